"""Every test file under tests/ is collected by the suite's own command (README command 2: plain ``pytest``).

pytest skips folders matching ``norecursedirs`` without a word; its default list contains ``build``, which
once hid all of tests/build/ from CI. This checks the collection CI makes: this session's own items when it is
that collection (plain ``pytest``), else a ``--collect-only`` child process, and names every folder whose test
files contributed nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def whole_suite_session(config: pytest.Config) -> bool:
    """This session collected the whole suite the default way (README command 2), nothing deselected."""
    opt = config.option
    return ([Path(a).resolve() for a in config.args] in ([TESTS], [REPO])
            and not (opt.keyword or opt.markexpr or opt.deselect or opt.ignore or opt.ignore_glob
                     or getattr(opt, "lf", False) or getattr(opt, "failedfirst", False)))


def collected_per_file() -> Counter[str]:
    """{test file relative to the repo: number of items} as ``pytest --collect-only -q`` from the repo root."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"collection failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Counter(line.split("::", 1)[0] for line in proc.stdout.splitlines() if "::" in line)


def files_with_tests() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in TESTS.rglob("test_*.py")
                  if "__pycache__" not in p.parts and not any(part.startswith(".") for part in p.parts))


def test_every_folder_of_test_files_is_collected(request: pytest.FixtureRequest) -> None:
    if whole_suite_session(request.config):  # this session is that collection: count its own items
        counts = Counter(str(Path(item.path).relative_to(REPO)) for item in request.session.items)
    else:
        counts = collected_per_file()
    expected = files_with_tests()
    assert expected, "no test files found under tests/"
    missing = [f for f in expected if counts[f] == 0]
    folders = sorted({str(Path(f).parent) for f in missing})
    assert not missing, (f"pytest collected nothing from {len(missing)} test file(s) in {folders} "
                         f"(a norecursedirs match in pyproject.toml, or a module-level skip?): {missing}")
    # And nothing is collected from outside tests/ (the count is the sum over the test folders).
    assert set(counts) <= set(expected), sorted(set(counts) - set(expected))
