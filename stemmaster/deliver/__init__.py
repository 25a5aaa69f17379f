"""Deliverables: versions, stem masters, formats, reference matching."""
