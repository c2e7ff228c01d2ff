"""`mlfarm harness build`: the xcodegen/xcodebuild plan, its execution (with stand-in tools on PATH), the
platform check, and the Xcode project files the plan relies on."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import BuildError, PlatformError, UsageError
from orchestrator.harness import app_build
from orchestrator.harness.app_build import DEFAULT_BUNDLE_ID, check_platform, execute, make_build_plan
from tests.conftest import CliResult
from tests.harness import swift_source

HARNESS = Path(__file__).resolve().parents[2] / "harness_app"
TEAM = "ABCDE12345"


def flag(argv: tuple[str, ...] | list[str], name: str) -> str:
    """The value after ``name`` in an argv (exactly once)."""
    assert list(argv).count(name) == 1, (name, argv)
    return argv[list(argv).index(name) + 1]


def settings(argv: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The KEY=VALUE build-setting overrides of an xcodebuild argv."""
    values = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("-")}  # "-destination a=b" is no setting
    return dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-") and a not in values)


def test_plan_generates_then_archives_a_signed_ios_build_then_exports_it(tmp_path: Path) -> None:
    plan = make_build_plan(tmp_path, team=TEAM)
    assert [s.name for s in plan.steps] == ["generate", "archive", "export"]
    assert all(s.cwd == tmp_path for s in plan.steps)
    generate, archive, export = (s.argv for s in plan.steps)
    project = yaml.safe_load((HARNESS / "project.yml").read_text())  # what xcodegen reads: name, targets
    # xcodegen turns the spec into <name>.xcodeproj in the project folder, which xcodebuild then builds
    assert generate[:2] == ("xcodegen", "generate") and Path(flag(generate, "--spec")) == tmp_path / "project.yml"
    assert Path(flag(generate, "--project")) == tmp_path
    assert archive[0] == "xcodebuild" and archive[-5] == "archive"
    assert Path(flag(archive, "-project")) == tmp_path / f"{project['name']}.xcodeproj"
    assert flag(archive, "-scheme") in project["targets"] and project["targets"][flag(archive, "-scheme")][
        "type"] == "application"
    # a device build (not the simulator), for any iOS device, in Release, signed automatically by the team
    assert flag(archive, "-sdk") == "iphoneos" and flag(archive, "-destination") == "generic/platform=iOS"
    assert flag(archive, "-configuration") == "Release" and "-allowProvisioningUpdates" in archive
    assert settings(archive) == {"DEVELOPMENT_TEAM": TEAM, "MLFARM_BUNDLE_ID": "dev.mlfarm.harness",
                                 "MLFARM_ENTITLEMENTS": "default", "CODE_SIGN_STYLE": "Automatic"}
    assert set(settings(archive)) <= set(project["settings"]["base"])  # overrides of settings the spec declares
    # the export reads the archive the archive step wrote, with the plan's options, into the .ipa's folder
    assert export[:2] == ("xcodebuild", "-exportArchive") and "-allowProvisioningUpdates" in export
    assert flag(export, "-archivePath") == flag(archive, "-archivePath")
    assert flag(archive, "-archivePath").endswith(".xcarchive")
    assert Path(flag(export, "-exportOptionsPlist")).name == "ExportOptions.plist"
    assert plan.ipa.suffix == ".ipa" and plan.ipa.parent == Path(flag(export, "-exportPath")).parent
    assert plan.ipa.is_relative_to(tmp_path)


def test_plan_options_reach_the_command_line(tmp_path: Path) -> None:
    plan = make_build_plan(tmp_path, team=TEAM, bundle_id="com.example.bench", configuration="Debug",
                           increased_memory_limit=True, out=tmp_path / "out" / "h.ipa")
    archive = plan.steps[1].argv
    assert archive[archive.index("-configuration") + 1] == "Debug"
    assert "MLFARM_BUNDLE_ID=com.example.bench" in archive
    assert "MLFARM_ENTITLEMENTS=increased-memory-limit" in archive
    assert plan.ipa == tmp_path / "out" / "h.ipa"


def test_export_options_plist_content(tmp_path: Path) -> None:
    plan = make_build_plan(tmp_path, team=TEAM)
    assert plistlib.loads(plan.export_options_plist()) == {
        "method": "development", "teamID": TEAM, "signingStyle": "automatic", "destination": "export",
        "thinning": "<none>", "stripSwiftSymbols": True,
    }


@pytest.mark.parametrize("kwargs,needle", [
    ({"team": None}, "needs an Apple development team id"),
    ({"team": "abc"}, "is not a team id"),
    ({"team": TEAM, "bundle_id": "dev.mlfarm/harness"}, "is not a bundle id"),
    ({"team": TEAM, "bundle_id": "harness"}, "is not a bundle id"),
    ({"team": TEAM, "configuration": "Profile"}, "--configuration"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, kwargs: dict[str, str | None], needle: str) -> None:
    with pytest.raises(UsageError, match=needle) as info:
        make_build_plan(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert info.value.fix


def test_platform_check() -> None:
    with pytest.raises(PlatformError, match="needs macOS with Xcode; this machine runs Linux") as info:
        check_platform("Linux")
    assert info.value.fix is not None and "mlfarm run --devices host" in info.value.fix
    with pytest.raises(PlatformError, match=r"^xcodegen not found") as info:
        check_platform("Darwin", which=lambda tool: None if tool == "xcodegen" else f"/usr/bin/{tool}")
    assert info.value.fix == "install XcodeGen: `brew install xcodegen`"
    check_platform("Darwin", which=lambda tool: f"/opt/homebrew/bin/{tool}")


# ---- execution with stand-in tools ---------------------------------------------------------------------

FAKE_TOOL = """#!{python}
import json, os, sys
from pathlib import Path
with open(os.environ["FAKE_TOOL_LOG"], "a") as log:
    log.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:], os.getcwd()]) + "\\n")
fail = os.environ.get("FAKE_TOOL_FAIL", "")
if fail and fail in sys.argv:
    print("note: Using new build system")
    print('error: No signing certificate "iOS Development" found')
    sys.exit(65)
if "-exportArchive" in sys.argv:
    out = Path(sys.argv[sys.argv.index("-exportPath") + 1])
    options = Path(sys.argv[sys.argv.index("-exportOptionsPlist") + 1]).read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    (out / "MLFarmHarness.ipa").write_bytes(b"PK fake ipa signed with " + options[-40:])
"""


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Put stand-in xcodegen/xcodebuild first on PATH; they log their argv and cwd, and export writes an .ipa."""

    def install(*tools: str) -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in tools:
            script = bin_dir / tool
            script.write_text(FAKE_TOOL.format(python=sys.executable))
            script.chmod(0o755)
        monkeypatch.setenv("PATH", str(bin_dir) if len(tools) < 2 else f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_TOOL_LOG", str(tmp_path / "tools.log"))
        return tmp_path / "tools.log"

    return install


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "harness_app"
    folder.mkdir()
    shutil.copy(HARNESS / "project.yml", folder / "project.yml")
    return folder


def test_execute_runs_the_steps_and_delivers_the_ipa(project: Path, fake_tools: Callable[..., Path]) -> None:
    log = fake_tools("xcodegen", "xcodebuild")
    stale = project / "build" / "export" / "MLFarmHarness.ipa"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    plan = make_build_plan(project, team=TEAM, out=project.parent / "dist" / "h.ipa")
    seen: list[str] = []

    ipa = execute(plan, on_step=lambda step: seen.append(step.name))

    assert seen == ["generate", "archive", "export"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[:-1] for c in calls] == [list(s.argv) for s in plan.steps]
    assert all(c[-1] == str(project) for c in calls)
    assert ipa == project.parent / "dist" / "h.ipa"
    assert ipa.read_bytes().startswith(b"PK fake ipa")
    assert plistlib.loads((project / "build" / "ExportOptions.plist").read_bytes())["teamID"] == TEAM
    assert (project / "build" / "logs" / "archive.log").is_file()


def test_a_failed_step_shows_the_log_tail_and_the_fix(project: Path, fake_tools: Callable[..., Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tools("xcodegen", "xcodebuild")
    monkeypatch.setenv("FAKE_TOOL_FAIL", "archive")
    with pytest.raises(BuildError, match="step 'archive' failed with exit code 65") as info:
        execute(make_build_plan(project, team=TEAM))
    assert 'No signing certificate "iOS Development" found' in info.value.message
    assert info.value.fix is not None and "Manage Certificates" in info.value.fix
    assert not (project / "build" / "MLFarmHarness.ipa").exists()


def test_a_missing_tool_is_a_platform_error(project: Path, fake_tools: Callable[..., Path]) -> None:
    fake_tools("xcodebuild")  # PATH holds only the fake xcodebuild: no xcodegen
    with pytest.raises(PlatformError, match="xcodegen not found") as info:
        execute(make_build_plan(project, team=TEAM))
    assert info.value.fix == "install XcodeGen: `brew install xcodegen`"


def test_a_tree_without_the_swift_sources_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="sources are not in this installation"):
        execute(make_build_plan(tmp_path, team=TEAM), run=lambda step, log: None)


# ---- the CLI -------------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the command really builds")
def test_cli_build_off_macos_is_a_platform_error(mlfarm: Callable[..., CliResult]) -> None:
    r = mlfarm("harness", "build", "--team", TEAM)
    assert r.exit_code == 3
    assert "building the Swift harness needs macOS with Xcode" in r.err
    assert "mlfarm run --devices host" in r.err
    r = mlfarm("harness", "build", "--json")
    error = r.json()["error"]  # type: ignore[index]
    assert (r.exit_code, error["type"], error["exit_code"]) == (3, "PlatformError", 3)


def test_cli_dry_run_prints_the_plan_on_any_os(mlfarm: Callable[..., CliResult]) -> None:
    r = mlfarm("harness", "build", "--team", TEAM, "--increased-memory-limit", "--dry-run", "--json")
    assert r.exit_code == 0, r.err
    data = r.json()
    # what the flags ask for, on the repository's harness_app (not the plan function's own output)
    assert data["team"] == TEAM and data["increased_memory_limit"] is True and data["configuration"] == "Release"
    assert data["bundle_id"] == DEFAULT_BUNDLE_ID and Path(data["project_dir"]) == HARNESS
    assert [s["name"] for s in data["steps"]] == ["generate", "archive", "export"]
    archive = data["steps"][1]["argv"]
    assert settings(archive)["MLFARM_ENTITLEMENTS"] == "increased-memory-limit"
    assert settings(archive)["DEVELOPMENT_TEAM"] == TEAM and flag(archive, "-sdk") == "iphoneos"
    assert data["export_options"]["teamID"] == TEAM and data["ipa"].endswith(".ipa")
    r = mlfarm("harness", "build", "--team", "nope", "--dry-run")
    assert r.exit_code == 2 and "is not a team id" in r.err


def test_cli_schema(mlfarm: Callable[..., CliResult]) -> None:
    r = mlfarm("harness", "schema", "job", "--json")
    assert r.exit_code == 0
    data = r.json()
    assert data["schema"] == json.loads((HARNESS / "contract" / "job.schema.json").read_text())  # type: ignore[index]
    r = mlfarm("harness", "schema", "result", "--path")
    assert Path(r.out.strip()) == HARNESS / "contract" / "result.schema.json"
    r = mlfarm("harness", "schema", "--json")
    listed = r.json()
    assert isinstance(listed, list) and [d["name"] for d in listed] == ["job", "result"]


# ---- the Xcode project files the plan relies on --------------------------------------------------------

def test_project_yml_matches_what_the_build_passes() -> None:
    spec = yaml.safe_load((HARNESS / "project.yml").read_text())
    base = spec["settings"]["base"]
    assert base["MLFARM_BUNDLE_ID"] == DEFAULT_BUNDLE_ID
    assert base["MLFARM_ENTITLEMENTS"] == app_build.ENTITLEMENTS[False]
    swift = (HARNESS / "Sources" / "HarnessKit" / "Harness.swift").read_text()
    assert base["MARKETING_VERSION"] == swift_source.string_constant(swift, "version")
    assert set(spec["schemes"]) == {app_build.SCHEME, "HarnessKitTests"}
    app = spec["targets"][app_build.SCHEME]
    assert app["settings"]["base"]["PRODUCT_BUNDLE_IDENTIFIER"] == "$(MLFARM_BUNDLE_ID)"
    assert app["settings"]["base"]["CODE_SIGN_ENTITLEMENTS"] == "Entitlements/$(MLFARM_ENTITLEMENTS).entitlements"
    for target in spec["targets"].values():
        for source in target["sources"]:
            assert (HARNESS / source).is_dir(), source
    assert set(spec["targets"]["HarnessKit"]["supportedDestinations"]) == {"iOS", "macOS"}


def test_entitlements_and_info_plist() -> None:
    entitlements = {value: plistlib.loads((HARNESS / "Entitlements" / f"{value}.entitlements").read_bytes())
                    for value in app_build.ENTITLEMENTS.values()}
    assert entitlements == {"default": {},
                            "increased-memory-limit": {"com.apple.developer.kernel.increased-memory-limit": True}}
    info = plistlib.loads((HARNESS / "Info.plist").read_bytes())
    # house_arrest VendDocuments needs file sharing; the orchestrator reads MLFarmEntitlements via lookup
    assert info["UIFileSharingEnabled"] is True and info["LSSupportsOpeningDocumentsInPlace"] is True
    assert info["MLFarmEntitlements"] == "$(MLFARM_ENTITLEMENTS)"
    assert info["CFBundleIdentifier"] == "$(PRODUCT_BUNDLE_IDENTIFIER)"


def test_build_outputs_are_git_ignored() -> None:
    paths = ["harness_app/build/MLFarmHarness.ipa", "harness_app/build/logs/archive.log",
             "harness_app/MLFarmHarness.xcodeproj/project.pbxproj", "harness_app/DerivedData/x"]
    r = subprocess.run(["git", "check-ignore", *paths], cwd=HARNESS.parent, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == paths
