"""Where third-party chatter goes: coremltools, scikit-learn and torch warn at import and conversion time
(unsupported versions, "Failed to load _MLModelProxy" x8 on Linux). Those are expected here and would bury
mlfarm's own output, so every log record and Python warning goes to the log file beside the results database
(``.mlfarm/mlfarm.log`` by default), and to stderr only with ``--debug``.

    configure(settings)   # once per command, from the root command
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from orchestrator.config import Settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_handlers: list[logging.Handler] = []


def log_path(settings: Settings) -> Path:
    return settings.db_path.parent / "mlfarm.log"


def configure(settings: Settings) -> None:
    """Route logging and warnings to the log file (and stderr with --debug); replaces an earlier setup."""
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
    path = log_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    except OSError:  # a read-only work folder: drop the chatter rather than fail the command
        file_handler = logging.NullHandler()
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    _handlers.append(file_handler)
    if settings.debug:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_FORMAT))
        _handlers.append(stream)
    for handler in _handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings.warn(...) -> the "py.warnings" logger -> the handlers above
    warnings.simplefilter("default")
