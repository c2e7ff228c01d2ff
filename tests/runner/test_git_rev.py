"""The spec's git revision stored on the run: the commit, ``-dirty`` when the spec file has uncommitted changes
(tests/report/test_git_rev.py: every report format shows it)."""

from __future__ import annotations

import subprocess

from orchestrator.runner.session import spec_git_rev


def git(cwd, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_spec_git_rev_is_the_commit_and_says_dirty(tmp_path):
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    spec = repo / "specs" / "tiny.yaml"
    spec.write_text("name: a\n")
    other = repo / "other.txt"
    other.write_text("x")
    git(repo, "init", "-q")
    assert spec_git_rev(spec) is None  # no commit yet
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    head = git(repo, "rev-parse", "HEAD")
    assert spec_git_rev(spec) == head
    other.write_text("y")  # another file's changes do not make the spec dirty
    assert spec_git_rev(spec) == head
    spec.write_text("name: b\n")
    assert spec_git_rev(spec) == f"{head}-dirty"
    fresh = repo / "specs" / "new.yaml"
    fresh.write_text("name: c\n")  # never committed
    assert spec_git_rev(fresh) == f"{head}-dirty"


def test_outside_a_checkout_there_is_no_revision(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: a\n")
    assert spec_git_rev(spec) is None
    assert spec_git_rev(None) is None
