"""Session fixtures for the MIL tests: converted attention blocks, small packages, loaded tiny-sd programs
(the tiny-sd stores themselves are in tests/fixtures/build.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.build.store import ArtifactEntry
from orchestrator.mil import Program, load
from tests.mil.blocks import attention_block, block_inputs, convert


@pytest.fixture(scope="session")
def attention_blocks(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], Program]:
    """(attention, latent side) -> the loaded fp16 package of the SD-1.5 attention block at that latent size,
    converted once per session."""
    folder = tmp_path_factory.mktemp("attention-blocks")
    cache: dict[tuple[str, int], Program] = {}

    def get(attention: str, latent: int) -> Program:
        if (attention, latent) not in cache:
            path = folder / f"block-{attention}-{latent}.mlpackage"
            convert(attention_block(attention), block_inputs(latent * latent), path)
            cache[(attention, latent)] = load(path)
        return cache[(attention, latent)]

    return get


class SmallNet(torch.nn.Module):
    """conv -> silu -> group norm -> flatten -> linear -> softmax: a few op families in one small package."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 8)
        self.fc = torch.nn.Linear(8 * 6 * 6, 10)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        x = self.norm(torch.nn.functional.silu(self.conv(image)))
        return (torch.softmax(self.fc(x.flatten(1)), dim=-1),)


@pytest.fixture(scope="session")
def small_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real fp16 .mlpackage converted from a small torch model; input ``image`` [1, 3, 6, 6], output ``out``."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("small") / "small.mlpackage"
    return convert(SmallNet().eval(), {"image": np.zeros((1, 3, 6, 6), np.float32)}, path)


@pytest.fixture(scope="session")
def unsupported_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real .mlpackage whose program uses an op the executor has no kernel for: (path, op type)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    op_type = "local_response_norm"

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 5, 5))], opset_version=ct.target.iOS17)
    def program(x):  # type: ignore[no-untyped-def]
        return mb.relu(x=mb.local_response_norm(x=x, size=3))

    path = tmp_path_factory.mktemp("unsupported") / "lrn.mlpackage"
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
               skip_model_load=True).save(str(path))
    return path, op_type


@pytest.fixture(scope="session")
def tiny_programs(tiny_artifacts: dict[tuple[str, str], ArtifactEntry]) -> Callable[[str, str], Program]:
    """(component, variant) -> the loaded Program of that tiny-sd artifact, loaded once per session."""
    cache: dict[tuple[str, str], Program] = {}

    def get(component: str, variant: str) -> Program:
        if (component, variant) not in cache:
            cache[(component, variant)] = load(tiny_artifacts[(component, variant)].path)
        return cache[(component, variant)]

    return get
