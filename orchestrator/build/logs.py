"""Keep the converters' chatter (tqdm bars, import warnings) off the user's terminal, but not lost.

coremltools and torch print progress bars and warnings to stderr; mlfarm shows its own progress instead.
``captured()`` collects that output; when a step fails its tail goes into the error message.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator


class Captured:
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def tail(self, lines: int = 8) -> str:
        text = self.buffer.getvalue().replace("\r", "\n")
        kept = [ln for ln in text.splitlines() if ln.strip() and "it/s]" not in ln and "ops/s]" not in ln
                and "passes/s]" not in ln]
        return "\n".join(kept[-lines:])


@contextlib.contextmanager
def captured() -> Iterator[Captured]:
    cap = Captured()
    handler = logging.StreamHandler(cap.buffer)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stderr(cap.buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield cap
    finally:
        root.removeHandler(handler)
