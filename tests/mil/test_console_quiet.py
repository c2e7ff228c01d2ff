"""Third-party warnings (coremltools' "Failed to load _MLModelProxy" x8, untested torch / scikit-learn versions)
go to the log file beside the results database, not to the console; ``--debug`` shows them. Run through the
real entry point in a fresh interpreter, where coremltools is imported (and warns) for the first time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"MLFARM_DB": str(tmp_path / "state" / "results.db"), "MLFARM_ARTIFACTS": str(tmp_path / "artifacts"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli import entry_point; entry_point()", *argv],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_coremltools_warnings_go_to_the_log_not_the_console(small_package, tmp_path):
    quiet = run(tmp_path, "run-artifact", str(small_package))
    assert quiet.returncode == 0, quiet.stderr
    assert "Failed to load" not in quiet.stderr + quiet.stdout
    assert "1x10" in quiet.stdout  # the command's own output is there
    log = (tmp_path / "state" / "mlfarm.log").read_text()
    assert "Failed to load _MLModelProxy" in log

    loud = run(tmp_path, "--debug", "run-artifact", str(small_package))
    assert loud.returncode == 0 and "Failed to load _MLModelProxy" in loud.stderr
