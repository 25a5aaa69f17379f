"""The one family of errors stemmaster raises for things the user can fix.

The CLI prints a ``StemmasterError`` as one line and exits non-zero, with no
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StemmasterError(Exception):
    """A problem the user can act on: bad input, bad settings, a missing file."""


class AudioError(StemmasterError):
    """An audio file that cannot be read, written, or is unusable as it is."""


class ProjectError(StemmasterError):
    """A project that does not exist, is malformed, or cannot be written."""


class SettingsError(StemmasterError):
    """A setting outside its allowed range, or an unknown setting."""


class SeparationError(StemmasterError):
    """Source separation could not run (missing weights, bad model)."""


class Cancelled(StemmasterError):
    """The user cancelled a long job; nothing half-written was left behind."""
