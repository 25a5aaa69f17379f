"""Release checks of a finished master: how it translates to other playback
(mono, a phone, earbuds, a car), what lossy codecs do to its peaks and
loudness, a level-matched before/after pair for listening, and report plots.

Each check takes audio shaped ``(channels, samples)`` and returns plain
dicts (JSON-ready: no NaN; a value that cannot be measured is ``None``).
Submodules are imported on use so importing stemmaster stays fast:

- :mod:`stemmaster.checks.translation` -- ``translation_checks``
- :mod:`stemmaster.checks.codec` -- ``codec_checks``
- :mod:`stemmaster.checks.ab` -- ``write_ab_pair``
- :mod:`stemmaster.checks.plots` -- ``tonal_balance``, ``short_term_curve``,
  ``plot_tonal_balance``, ``plot_short_term_loudness`` (matplotlib, loaded
  inside the plotting functions only)
"""
