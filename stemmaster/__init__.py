"""stemmaster: a stem-aware remastering workstation.

Audio everywhere in the API is a NumPy array shaped ``(channels, samples)``,
float32 (float64 accepted), full scale at 1.0; mono is ``(1, samples)``.
Importing this package imports neither torch nor textual.
"""

from stemmaster.errors import (  # noqa: F401
    AudioError,
    Cancelled,
    ProjectError,
    SeparationError,
    SettingsError,
    StemmasterError,
)

__all__ = ["AudioError", "Cancelled", "ProjectError", "SeparationError", "SettingsError", "StemmasterError"]
__version__ = "0.1.0"
