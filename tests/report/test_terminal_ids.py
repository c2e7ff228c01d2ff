"""The terminal report never breaks device keys or variant ids (``virtual:iphone-12``,
``fp16-palette6-split_einsum_v2``) at 80 and 120 columns: each appears whole on one line."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from orchestrator.report import render_terminal
from tests.report.test_renderers import report  # noqa: F401  (the module-scoped fixture report)


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_report_keeps_identifiers_whole(report, width):  # noqa: F811
    buf = io.StringIO()
    render_terminal(report, Console(file=buf, width=width, color_system=None))
    lines = buf.getvalue().splitlines()
    keys = {v.device_key for v in report.gating} | {c.device_key for c in report.comparisons}
    variants = {v.variant for v in report.gating}
    assert any(":" in k for k in keys) and any(len(v) > 25 for v in variants)
    for ident in keys | variants:
        pattern = re.compile(rf"(?<![\w@:.-]){re.escape(ident)}(?![\w@:.-])")
        assert any(pattern.search(line) for line in lines), (width, ident)
