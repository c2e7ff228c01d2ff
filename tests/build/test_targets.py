"""Deployment targets: the variant's floor, raised to the app's own target, never to a sibling's."""

from __future__ import annotations

import pytest

from orchestrator.build.targets import DeploymentTarget, deployment_target
from orchestrator.variants import WEIGHTS, Variant


@pytest.mark.parametrize(("weights", "ios"), [("none", 15), ("int8", 16), ("palette6", 16), ("palette4-g16", 18)])
def test_the_variant_floor_comes_from_the_registry(weights: str, ios: int) -> None:
    target = deployment_target(Variant("fp16", weights, "original"))
    assert target.ios == ios == WEIGHTS[weights].min_os("iOS")
    assert target.macos == WEIGHTS[weights].min_os("macOS")


def test_the_app_target_raises_the_floor() -> None:
    v = Variant("fp16", "none", "split_einsum_v2")
    assert deployment_target(v, min_ios=17).name == "iOS17"
    assert deployment_target(v, min_macos=14).name == "iOS17"
    # Two apps: the model must load on both, so the lower of their targets wins.
    assert deployment_target(v, min_ios=17, min_macos=13).name == "iOS16"
    assert deployment_target(Variant("fp16", "palette4-g16", "original"), min_ios=16).name == "iOS18"


def test_unknown_os_versions_snap_to_a_coremltools_target() -> None:
    assert deployment_target(Variant("fp16", "none", "original"), min_ios=19).name == "iOS26"
    assert deployment_target(Variant("fp16", "none", "original"), min_ios=40).name == "iOS26"
    assert DeploymentTarget(18).to_json() == {"iOS": 18, "macOS": 15, "coremltools": "iOS18"}
    with pytest.raises(ValueError, match="no Core ML deployment target"):
        DeploymentTarget(14)


def test_every_target_exists_in_coremltools() -> None:
    import coremltools as ct

    for ios in (15, 16, 17, 18, 26):
        assert DeploymentTarget(ios).coremltools() == getattr(ct.target, f"iOS{ios}")
