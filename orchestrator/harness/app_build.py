"""Building the Swift harness app into a development-signed .ipa on a Mac: a plan, then its execution.

``make_build_plan`` is pure: it computes the xcodegen/xcodebuild command lines and the ExportOptions.plist
content, so it is tested on any OS and printed by ``mlfarm harness build --dry-run``. ``execute`` writes the
plist and runs the steps through ``run_step``, the one place that starts a process. Files, under the
harness project folder (``harness_app/``)::

    project.yml                      the XcodeGen spec (source of truth)
    MLFarmHarness.xcodeproj/         step "generate": xcodegen generate          (git-ignored)
    build/                                                                       (git-ignored)
        ExportOptions.plist          written by execute()
        MLFarmHarness.xcarchive/     step "archive": xcodebuild archive
        export/MLFarmHarness.ipa     step "export": xcodebuild -exportArchive
        logs/<step>.log              everything each step printed
        MLFarmHarness.ipa            the result (unless --out says otherwise)

The usbmux backend installs that .ipa with InstallationProxyService; the bundle id must be the one the
orchestrator launches (``DEFAULT_BUNDLE_ID`` unless ``--bundle-id``).
"""

from __future__ import annotations

import platform
import plistlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import BuildError, PlatformError, UsageError

DEFAULT_BUNDLE_ID = "dev.mlfarm.harness"
PROJECT_NAME = "MLFarmHarness"
SCHEME = "MLFarmHarness"
CONFIGURATIONS = ("Release", "Debug")
# project.yml's MLFARM_ENTITLEMENTS values: the entitlements file Entitlements/<value>.entitlements
ENTITLEMENTS = {False: "default", True: "increased-memory-limit"}

_TEAM = re.compile(r"^[A-Z0-9]{10}$")
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

_NOT_MACOS_FIX = ("on this machine use the Python host harness (`mlfarm run --devices host`) or the virtual "
                  "device; build the .ipa on a Mac with Xcode: `mlfarm harness build --team TEAMID`")
_TOOL_FIX = {
    "xcodegen": "install XcodeGen: `brew install xcodegen`",
    "xcodebuild": "install Xcode from the App Store, then `sudo xcode-select -s /Applications/Xcode.app`",
}
# What xcodebuild prints for the usual signing and setup problems, and what fixes each.
_KNOWN_FAILURES = (
    ("requires Xcode", _TOOL_FIX["xcodebuild"]),
    ("No Accounts", "sign in to your Apple ID in Xcode > Settings > Accounts, then rerun"),
    ("No signing certificate", "let Xcode create a development certificate: Xcode > Settings > Accounts > "
                               "Manage Certificates > + Apple Development"),
    ("requires a development team", "pass --team TEAMID (Xcode > Settings > Accounts shows the team id)"),
    ("has no devices", "register the device with your team: connect it and open the project in Xcode once, "
                       "or add its UDID at developer.apple.com > Devices"),
    ("increased-memory-limit", "the team's App ID lacks the Increased Memory Limit capability: enable it at "
                               "developer.apple.com, or build without --increased-memory-limit"),
)


@dataclass(frozen=True)
class Step:
    """One command of the build: a name (also the log file name), its argv, and where it runs."""

    name: str
    argv: tuple[str, ...]
    cwd: Path

    def display(self) -> str:
        return " ".join(a if re.fullmatch(r"[\w@%+=:,./-]+", a) else repr(a) for a in self.argv)


@dataclass(frozen=True)
class BuildPlan:
    """Everything ``execute`` will do, computed up front; printable and comparable in tests."""

    project_dir: Path
    team: str
    bundle_id: str
    configuration: str
    increased_memory_limit: bool
    steps: tuple[Step, ...]
    export_options: dict[str, Any] = field(hash=False)
    ipa: Path

    @property
    def build_dir(self) -> Path:
        return self.project_dir / "build"

    @property
    def export_options_path(self) -> Path:
        return self.build_dir / "ExportOptions.plist"

    @property
    def archive_path(self) -> Path:
        return self.build_dir / f"{PROJECT_NAME}.xcarchive"

    @property
    def export_dir(self) -> Path:
        return self.build_dir / "export"

    @property
    def exported_ipa(self) -> Path:
        return self.export_dir / f"{PROJECT_NAME}.ipa"

    def export_options_plist(self) -> bytes:
        return plistlib.dumps(self.export_options, fmt=plistlib.FMT_XML, sort_keys=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "project_dir": str(self.project_dir), "team": self.team, "bundle_id": self.bundle_id,
            "configuration": self.configuration, "increased_memory_limit": self.increased_memory_limit,
            "ipa": str(self.ipa), "export_options": dict(self.export_options),
            "steps": [{"name": s.name, "argv": list(s.argv), "cwd": str(s.cwd)} for s in self.steps],
        }


def make_build_plan(project_dir: Path, *, team: str | None, bundle_id: str = DEFAULT_BUNDLE_ID,
                    configuration: str = "Release", increased_memory_limit: bool = False,
                    out: Path | None = None) -> BuildPlan:
    """The build as data; raises UsageError for a missing/ill-formed team or bundle id."""
    if not team:
        raise UsageError("signing the harness needs an Apple development team id",
                         fix="pass --team TEAMID or set MLFARM_DEVELOPMENT_TEAM (Xcode > Settings > Accounts "
                             "shows the 10-character id)")
    if not _TEAM.match(team):
        raise UsageError(f"--team {team!r} is not a team id: expected 10 upper-case letters or digits",
                         fix="copy the id from Xcode > Settings > Accounts or developer.apple.com > Membership")
    if not _BUNDLE_ID.match(bundle_id):
        raise UsageError(f"--bundle-id {bundle_id!r} is not a bundle id: expected reverse-DNS such as "
                         f"{DEFAULT_BUNDLE_ID} (letters, digits, '-' and '.')", fix=f"use e.g. {DEFAULT_BUNDLE_ID}")
    if configuration not in CONFIGURATIONS:
        raise UsageError(f"--configuration {configuration!r}: expected one of {', '.join(CONFIGURATIONS)}",
                         fix="use --configuration Release (what gets measured) or Debug")
    project_dir = project_dir.resolve()
    build_dir = project_dir / "build"
    settings = (f"DEVELOPMENT_TEAM={team}", f"MLFARM_BUNDLE_ID={bundle_id}",
                f"MLFARM_ENTITLEMENTS={ENTITLEMENTS[increased_memory_limit]}", "CODE_SIGN_STYLE=Automatic")
    archive = build_dir / f"{PROJECT_NAME}.xcarchive"
    steps = (
        Step("generate", ("xcodegen", "generate", "--spec", str(project_dir / "project.yml"),
                          "--project", str(project_dir)), project_dir),
        Step("archive", ("xcodebuild", "-project", str(project_dir / f"{PROJECT_NAME}.xcodeproj"),
                         "-scheme", SCHEME, "-configuration", configuration, "-sdk", "iphoneos",
                         "-destination", "generic/platform=iOS", "-archivePath", str(archive),
                         "-allowProvisioningUpdates", "archive", *settings), project_dir),
        Step("export", ("xcodebuild", "-exportArchive", "-archivePath", str(archive),
                        "-exportPath", str(build_dir / "export"),
                        "-exportOptionsPlist", str(build_dir / "ExportOptions.plist"),
                        "-allowProvisioningUpdates"), project_dir),
    )
    export_options = {"method": "development", "teamID": team, "signingStyle": "automatic",
                      "destination": "export", "thinning": "<none>", "stripSwiftSymbols": True}
    return BuildPlan(project_dir=project_dir, team=team, bundle_id=bundle_id, configuration=configuration,
                     increased_memory_limit=increased_memory_limit, steps=steps, export_options=export_options,
                     ipa=(out or build_dir / f"{PROJECT_NAME}.ipa").resolve())


def check_platform(system: str | None = None, which: Callable[[str], str | None] = shutil.which) -> None:
    """Raise PlatformError unless this is macOS with xcodegen and xcodebuild on PATH."""
    system = system or platform.system()
    if system != "Darwin":
        raise PlatformError(f"building the Swift harness needs macOS with Xcode; this machine runs {system}",
                            fix=_NOT_MACOS_FIX)
    missing = [tool for tool in _TOOL_FIX if which(tool) is None]
    if missing:
        raise PlatformError(f"{' and '.join(missing)} not found on PATH",
                            fix="; ".join(_TOOL_FIX[tool] for tool in missing))


def check_project(project_dir: Path) -> None:
    if not (project_dir / "project.yml").is_file():
        raise BuildError(f"the Swift harness sources are not in this installation ({project_dir}/project.yml "
                         "is missing)", fix="run the command from a clone of the mlfarm repository")


def run_step(step: Step, log: Path) -> None:
    """Run one step, its output going to ``log``; a failure becomes BuildError with the log's tail and a fix."""
    try:
        with log.open("wb") as out:
            code = subprocess.run(step.argv, cwd=step.cwd, stdout=out, stderr=subprocess.STDOUT,
                                  check=False).returncode
    except FileNotFoundError as exc:
        raise PlatformError(f"{step.argv[0]} not found on PATH",
                            fix=_TOOL_FIX.get(step.argv[0], f"install {step.argv[0]}")) from exc
    if code != 0:
        text = log.read_text(errors="replace")
        tail = "\n".join(text.splitlines()[-15:])
        fix = next((f for needle, f in _KNOWN_FAILURES if needle in text), None)
        raise BuildError(f"step {step.name!r} failed with exit code {code}; last lines of {log}:\n{tail}",
                         fix=fix or f"read {log}; rerun the step by hand: {step.display()}")


def execute(plan: BuildPlan, *, run: Callable[[Step, Path], None] = run_step,
            on_step: Callable[[Step], None] | None = None) -> Path:
    """Write ExportOptions.plist, run the steps in order, move the exported .ipa to ``plan.ipa``."""
    check_project(plan.project_dir)
    # Stale outputs would let a failed export look like a success.
    shutil.rmtree(plan.export_dir, ignore_errors=True)
    shutil.rmtree(plan.archive_path, ignore_errors=True)
    logs = plan.build_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan.export_options_path.write_bytes(plan.export_options_plist())
    for step in plan.steps:
        if on_step is not None:
            on_step(step)
        run(step, logs / f"{step.name}.log")
    if not plan.exported_ipa.is_file():
        raise BuildError(f"xcodebuild finished but wrote no {plan.exported_ipa}",
                         fix=f"read {logs / 'export.log'}")
    plan.ipa.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(plan.exported_ipa, plan.ipa)
    return plan.ipa
