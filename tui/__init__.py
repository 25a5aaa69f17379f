"""The Textual terminal UI of stemmaster (issue #6).

It calls the same public API the CLI calls; nothing in ``stemmaster`` or
``separation`` imports it.
"""
