"""``mlfarm build`` and ``mlfarm artifacts`` end to end, in-process, against a real store."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from tests.conftest import CliResult
from tests.fixtures.build import TINY_SPEC_PATH

Run = Callable[..., CliResult]
SELECT = ("--components", "text_encoder", "--variants", "fp16-none-original,fp16-palette4-original")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-artifacts")


@pytest.fixture
def run(mlfarm: Run, store_dir: Path) -> Run:
    """mlfarm with --artifacts pointing at this module's store (builds carry over between tests)."""
    return lambda *args: mlfarm("--artifacts", store_dir, *args)


@pytest.fixture(scope="module")
def built(store_dir: Path) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--artifacts", str(store_dir), "build", str(TINY_SPEC_PATH), *SELECT, "--json"])
    assert code == 0
    data = json.loads(out.getvalue())
    assert isinstance(data, dict)
    return data


def test_cold_build_json(built: dict[str, Any], store_dir: Path) -> None:
    assert (built["built"], built["cached"]) == (2, 0)
    ids = [a["id"] for a in built["artifacts"]]
    assert ids[0].startswith("text_encoder-fp16-none-original@")
    for artifact in built["artifacts"]:
        assert artifact["cache_hit"] is False and Path(artifact["path"]).is_dir()
        assert artifact["bytes_on_disk"] > 0 and Path(artifact["path"]).is_relative_to(store_dir)


def test_second_build_is_all_hits_and_the_dry_run_says_so(built: dict[str, Any], run: Run) -> None:
    again = run("build", TINY_SPEC_PATH, *SELECT, "--json")
    assert again.exit_code == 0
    data = again.json()
    assert isinstance(data, dict) and (data["built"], data["cached"]) == (0, 2)
    assert [a["sha256"] for a in data["artifacts"]] == [a["sha256"] for a in built["artifacts"]]
    dry = run("build", TINY_SPEC_PATH, "--components", "text_encoder", "--dry-run", "--json").json()
    assert isinstance(dry, dict)
    status = {i["variant"]: (i["cached"], i["reason"]) for i in dry["items"]}
    assert status["fp16-palette4-original"] == (True, "hit") and status["fp16-int8-original"] == (False, "new")
    assert len(status) == 11


def test_rich_progress_without_json(built: dict[str, Any], run: Run) -> None:
    result = run("build", TINY_SPEC_PATH, *SELECT)
    assert result.exit_code == 0
    assert "text_encoder fp16-palette4-original" in result.out and "cached" in result.out
    assert "0 built, 2 cached" in result.out


def test_list_show_and_verify(built: dict[str, Any], run: Run) -> None:
    listed = run("artifacts", "list", "--json").json()
    assert isinstance(listed, list) and {a["id"] for a in listed} == {a["id"] for a in built["artifacts"]}
    assert run("artifacts", "--json").json() == listed  # bare `artifacts` lists
    shown = run("artifacts", "show", "tiny-sd/text_encoder/fp16-palette4-original", "--json").json()
    assert isinstance(shown, dict)
    manifest = shown["manifest"]
    for key in ("component", "variant", "source", "tools", "inputs", "outputs", "files", "weights",
                "min_deployment_target", "build"):
        assert key in manifest
    assert manifest["weights"]["bytes_stored"] < manifest["weights"]["bytes_decompressed_fp16"] / 2
    table = run("artifacts", "list")
    assert table.exit_code == 0 and "text_encoder-fp16-none-original@" in table.out
    verified = run("artifacts", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["bad"] == 0  # type: ignore[index]


def test_unknown_artifact_and_bad_options_exit_2(built: dict[str, Any], run: Run) -> None:
    missing = run("artifacts", "show", "unet-fp16-none-original@000000000000")
    assert missing.exit_code == 2 and "no artifact" in missing.err and "mlfarm artifacts list" in missing.err
    bad_variant = run("build", TINY_SPEC_PATH, "--variants", "fp16-palette5-original")
    assert bad_variant.exit_code == 2 and "fp16-palette5-original" in bad_variant.err
    bad_component = run("build", TINY_SPEC_PATH, "--components", "safety_checker", "--json")
    assert bad_component.exit_code == 2 and bad_component.json()["error"]["type"] == "UsageError"  # type: ignore[index]


def test_corruption_fails_verify_then_gets_rebuilt(built: dict[str, Any], run: Run) -> None:
    target = next(a for a in built["artifacts"] if a["variant"] == "fp16-none-original")
    weights = Path(target["path"]) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0x55
    weights.write_bytes(bytes(data))
    result = run("artifacts", "verify")
    assert result.exit_code == 2
    assert target["id"] in result.err and "corrupt" in result.err and "mlfarm build" in result.err
    as_json = run("artifacts", "verify", "--json")
    assert as_json.exit_code == 2 and as_json.json()["bad"] == 1  # type: ignore[index]
    rebuilt = run("build", TINY_SPEC_PATH, *SELECT, "--json").json()
    assert isinstance(rebuilt, dict) and (rebuilt["built"], rebuilt["cached"]) == (1, 1)
    assert run("artifacts", "verify").exit_code == 0


def test_gc(built: dict[str, Any], run: Run, store_dir: Path) -> None:
    orphan = store_dir / "blobs" / ("e" * 64)
    orphan.mkdir(parents=True)
    (orphan / "manifest.json").write_text("{}")
    dry = run("artifacts", "gc", "--dry-run", "--json").json()
    assert isinstance(dry, dict) and dry["blobs"] == ["e" * 64] and orphan.exists()
    done = run("artifacts", "gc")
    assert done.exit_code == 0 and "freed" in done.out and not orphan.exists()
    assert run("artifacts", "verify").exit_code == 0
