"""Lookups stay fast because they import neither torch nor coremltools (seconds each on this machine): checked
in a fresh interpreter per command, through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "coremltools", "sklearn")
CODE = f"""
import json, sys
from orchestrator.cli import main
code = main(sys.argv[1:])
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [
    ["profiles", "--json"],
    ["profiles", "show", "iphone-12", "--json"],
    ["runs", "--json"],
    ["spec", "check", "examples/tiny-sd.yaml", "--json"],
    ["artifacts", "--json"],
])
def test_lookups_do_not_import_torch_or_coremltools(argv, tmp_path):
    env = {"MLFARM_DB": str(tmp_path / "results.db"), "MLFARM_ARTIFACTS": str(tmp_path / "artifacts"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", CODE, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    assert result["heavy"] == [], f"{' '.join(argv)} imported {result['heavy']}"


def test_ctrl_c_advice_fits_the_command():
    from orchestrator.cli.errors import render

    assert "--resume" in (render(KeyboardInterrupt(), "run").fix or "")
    for command in ("plan", "analyze", "build"):
        fix = render(KeyboardInterrupt(), command).fix or ""
        assert "--resume" not in fix and "rerun" in fix, command
    assert render(KeyboardInterrupt(), "plan").exit_code == 130


def test_the_subcommand_is_found_after_global_options():
    from orchestrator.cli import _command

    assert _command(["--artifacts", "/x", "--debug", "plan", "spec.yaml"]) == "plan"
    assert _command(["--db", "a.db", "run", "--resume", "r1"]) == "run"
    assert _command(["--version"]) is None
