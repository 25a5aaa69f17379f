"""A terminal progress bar for the CLI: a callback ``(fraction, message)`` with an ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Draws ``[#####.....]  45%  message  ETA 3 s`` on a terminal, plain lines elsewhere."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 24) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.last_message = ""
        self.drawn = False

    def __call__(self, fraction: float, message: str) -> None:
        fraction = max(0.0, min(1.0, fraction))
        if self.tty:
            elapsed = time.monotonic() - self.start
            eta = f"ETA {elapsed * (1 - fraction) / fraction:4.0f} s" if 0.02 < fraction < 1 else " " * 10
            filled = int(round(self.width * fraction))
            line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:3.0f}%  {eta}  {message}"
            self.stream.write("\r" + line[:110].ljust(110))
            self.stream.flush()
            self.drawn = True
        elif message != self.last_message:
            self.stream.write(f"{self.label}: {fraction * 100:3.0f}% {message}\n")
            self.stream.flush()
        self.last_message = message

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()
