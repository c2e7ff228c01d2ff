"""``python -m orchestrator.cli``: the same as the ``mlfarm`` command."""

from orchestrator.cli import entry_point

entry_point()
