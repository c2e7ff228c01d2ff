"""mlfarm's error hierarchy. Every error carries the fix.

    MlfarmError                      message + fix; exit code 3 (operational) unless overridden
    ├── InputError                   bad user input: exit code 2, never a traceback
    │   ├── ValidationError          one or more Problems in a YAML/JSON document (file + key path)
    │   │   ├── ProfileError         a device profile file
    │   │   ├── SpecError            a release spec
    │   │   └── ContractError        a job or result document crossing the harness boundary
    │   ├── UsageError               a CLI argument that makes no sense
    │   ├── UnknownProfileError      a profile id or ProductType nobody claims
    │   └── ArtifactError            a missing, corrupt or unreadable artifact
    │       └── UnsupportedOpError   a MIL op without an executor kernel
    ├── BuildError                   a conversion or compression step failed
    ├── PlanError                    nothing can be planned (e.g. no artifacts match)
    ├── StoreError                   the results database is unusable
    ├── DeviceError                  a device backend failed (udid attribute)
    │   ├── TransportError           connection-level fault: retried with backoff
    │   ├── InstallError             the harness app could not be installed
    │   └── TunnelUnavailableError   iOS 17+ needs an RSD tunnel and none is available
    └── PlatformError                the command needs another OS (e.g. `harness build` off macOS)

Backends translate their library's exceptions into these at the boundary (``raise ... from exc``),
so the CLI can map each to one message and one exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1  # a gate failed or a regression was found
EXIT_INPUT = 2  # bad input: YAML, spec, CLI args, files coming back from devices
EXIT_OPERATIONAL = 3  # the environment failed: device unreachable, conversion crashed, ...


class MlfarmError(Exception):
    """Base of every error mlfarm raises on purpose."""

    exit_code = EXIT_OPERATIONAL

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message


class InputError(MlfarmError):
    exit_code = EXIT_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one document: ``file: key: message`` plus how to fix it."""

    file: str
    key: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return where + self.message


class ValidationError(InputError):
    """A document failed validation; ``problems`` lists every problem found, not only the first."""

    kind = "document"

    def __init__(self, problems: list[Problem], *, fix: str | None = None) -> None:
        self.problems = list(problems)
        first_fix = next((p.fix for p in self.problems if p.fix), None)
        lines = [str(p) for p in self.problems]
        head = f"invalid {self.kind}" + ("" if len(lines) == 1 else f" ({len(lines)} problems)")
        super().__init__(head + ":\n  " + "\n  ".join(lines), fix=fix or first_fix)

    @property
    def path(self) -> str | None:
        return self.problems[0].file if self.problems else None

    @property
    def key(self) -> str | None:
        return self.problems[0].key if self.problems else None


class ProfileError(ValidationError):
    kind = "device profile"


class SpecError(ValidationError):
    kind = "release spec"


class ContractError(ValidationError):
    kind = "harness document"


class UsageError(InputError):
    pass


class UnknownProfileError(InputError):
    def __init__(self, message: str, *, fix: str | None = None, suggestions: list[str] | None = None):
        super().__init__(message, fix=fix)
        self.suggestions = suggestions or []


class ArtifactError(InputError):
    def __init__(self, message: str, *, path: Path | str | None = None, fix: str | None = None):
        super().__init__(message, fix=fix)
        self.path = str(path) if path is not None else None


class UnsupportedOpError(ArtifactError):
    def __init__(self, op_type: str, *, artifact: str | None = None, fix: str | None = None):
        where = f" in {artifact}" if artifact else ""
        super().__init__(
            f"MIL op '{op_type}'{where} has no executor kernel",
            path=artifact,
            fix=fix or "add a kernel to orchestrator/mil/kernels (see README 'Where to add things')",
        )
        self.op_type = op_type


class BuildError(MlfarmError):
    pass


class PlanError(MlfarmError):
    pass


class StoreError(MlfarmError):
    pass


class DeviceError(MlfarmError):
    def __init__(self, message: str, *, udid: str | None = None, fix: str | None = None):
        super().__init__(message, fix=fix)
        self.udid = udid


class TransportError(DeviceError):
    """A connection-level fault; the runner retries these with backoff."""


class InstallError(DeviceError):
    pass


class TunnelUnavailableError(DeviceError):
    pass


class PlatformError(MlfarmError):
    pass
