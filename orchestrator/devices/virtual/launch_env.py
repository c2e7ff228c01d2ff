"""What the emulated harness process may see: a clean environment built from an allowlist.

A client of the emulator chooses the launch environment (DVT ``launchSuspendedProcess...environment:``) and
can upload files into the app container over AFC. Passed through as is, ``PYTHONPATH=Documents/x`` plus an
uploaded ``sitecustomize.py`` would run the client's code as the user serving the emulator. So:

- from the client, only the harness's own knobs (``CLIENT_VARIABLES``) are taken; everything else is dropped;
- from the serving process, only what a Python child needs to run (``HOST_VARIABLES``) and the same knobs
  (set when the farm was started, e.g. by tests);
- ``HOME`` and ``TMPDIR`` point into the app container, as on iOS;
- the interpreter runs with ``-I`` (see ``watchdog.harness_command``): it ignores ``PYTHON*`` variables and
  never puts the working directory (the container) on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.devices.watchdog import APP_BASELINE_ENV
from orchestrator.harness.host import DELAY_ENV

CLIENT_VARIABLES = frozenset({DELAY_ENV})
HOST_VARIABLES = frozenset({
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", APP_BASELINE_ENV, DELAY_ENV,
})
MAX_VALUE_CHARS = 256


def harness_environment(client: Mapping[str, str], host: Mapping[str, str], *, container: Path,
                        udid: str) -> tuple[dict[str, str], list[str]]:
    """The child's environment and the names of the client variables that were dropped."""
    env = {k: v for k, v in host.items() if k in HOST_VARIABLES}
    dropped = []
    for name, value in client.items():
        if name in CLIENT_VARIABLES and len(value) <= MAX_VALUE_CHARS and "\0" not in value:
            env[name] = value
        else:
            dropped.append(name)
    env.update(HOME=str(container), TMPDIR=str(container / "tmp"), MLFARM_VIRTUAL_DEVICE=udid)
    return env, sorted(dropped)
