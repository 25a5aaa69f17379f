"""Source separation (Demucs) for stemmaster: a stereo render into vocals, drums, bass and other.

Knows nothing of projects; imports torch lazily. Its API (a ``Separator`` with
``separate(audio, sample_rate, progress, cancel) -> dict[str, audio]``) lands
with issue #4; until then ``stemmaster`` refuses a stereo render with a
one-line message instead of mastering it unseparated.
"""
