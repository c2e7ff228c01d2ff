"""`model.source: python:module:factory` and `builtin:tiny-cnn`: the user's own PyTorch modules qualify like
built-ins (reference outputs from the module itself), and a broken factory is one exit-2 message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.models import PythonSource, load_source
from orchestrator.spec import load_spec

CNN = '''
import torch
from torch import nn


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class Net(nn.Module):
    """depthwise conv + squeeze-excite + hardswish"""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 48, 3, padding=1)
        self.dw = nn.Conv2d(48, 48, 3, padding=1, groups=48)
        self.se = SE(48)
        self.pw = nn.Conv2d(48, 48, 1)
        self.head = nn.Linear(48, 80)

    def forward(self, image):
        x = nn.functional.hardswish(self.stem(image))
        x = self.pw(self.se(nn.functional.hardswish(self.dw(x))))
        return self.head(x.mean((2, 3)))


def build():
    torch.manual_seed(0)
    return Net()


def pair():
    torch.manual_seed(1)
    return {"backbone": Net(), "projector": nn.Linear(80, 32)}


def broken():
    raise RuntimeError("weights file missing")


def wrong():
    return 42
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "usermodels").mkdir()
    (tmp_path / "usermodels" / "__init__.py").write_text("")
    (tmp_path / "usermodels" / "cnn.py").write_text(textwrap.dedent(CNN))
    return tmp_path


def write(folder: Path, factory: str, components: dict, name: str = "mine", **extra: object) -> Path:
    data = {"name": name, "model": {"source": f"python:usermodels.cnn:{factory}", "components": components},
            "devices": ["host"], "baseline": "none",
            "variants": {"weights": ["none", "palette6"], "attention": ["original"], "compute_units": ["cpu_only"]},
            "measure": {"warmup": 1, "iterations": 3}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


IMAGE = {"inputs": {"image": {"shape": [1, 3, 16, 16]}}}


def test_a_factory_module_is_one_component_with_outputs_from_the_module(folder):
    spec = load_spec(write(folder, "build", {"classifier": IMAGE}))
    source = load_source(spec.model, relative_to=folder)
    assert isinstance(source, PythonSource) and source.components() == ("classifier",)
    assert source.output_names("classifier") == ("output",)
    reference = source.reference("classifier", source.example_inputs("classifier", spec.model.components[
        "classifier"], 0))
    assert reference["output"].shape == (1, 80)


def test_a_mapping_gives_one_component_per_name_and_outputs_can_be_named(folder):
    spec = load_spec(write(folder, "pair", {"backbone": IMAGE | {"outputs": ["logits"]},
                                            "projector": {"inputs": {"features": {"shape": [2, 80]}}}}))
    source = load_source(spec.model, relative_to=folder)
    assert source.components() == ("backbone", "projector")
    assert source.output_names("backbone") == ("logits",)


@pytest.mark.parametrize(("factory", "components", "key", "words"), [
    ("broken", {"classifier": IMAGE}, "model.source", "raised RuntimeError: weights file missing"),
    ("wrong", {"classifier": IMAGE}, "model.source", "returned int, not an nn.Module"),
    ("nothere", {"classifier": IMAGE}, "model.source", "has no function 'nothere'"),
    ("pair", {"backbone": IMAGE}, "model.components.projector.inputs", "needs its inputs declared"),
    ("pair", {"backbone": IMAGE, "projector": {"inputs": {"features": {"shape": [2, 80]}}},
              "extra": IMAGE}, "model.components.extra", "returned no module 'extra'"),
])
def test_bad_factories_exit_2_naming_key_and_fix(folder, mlfarm, factory, components, key, words):
    result = mlfarm("spec", "check", write(folder, factory, components))
    assert result.exit_code == 2 and key in result.err and words in result.err, result.err
    assert "fix:" in result.err and "Traceback" not in result.err


def test_a_module_that_cannot_be_imported(tmp_path, mlfarm):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "devices": ["host"], "model": {
        "source": "python:nowhere.models:build", "components": {"c": IMAGE}}}))
    result = mlfarm("spec", "check", spec)
    assert result.exit_code == 2 and "model.source" in result.err and "cannot import nowhere.models" in result.err


@pytest.mark.slow
def test_qualify_a_depthwise_se_hardswish_cnn_from_a_factory(folder, mlfarm):
    result = mlfarm("qualify", write(folder, "build", {"classifier": IMAGE | {"outputs": ["logits"]}}),
                    "--format", "json", "--json")
    assert result.exit_code in (0, 1), result.err
    verdicts = result.json()["report"]["verdicts"]
    assert {v["component"] for v in verdicts} == {"classifier"}
    assert all(v["job_status"] == "ok" and v["psnr_db"] > 35 for v in verdicts), verdicts


@pytest.mark.slow
def test_qualify_builtin_tiny_cnn_example(repo, mlfarm, tmp_path):
    data = yaml.safe_load((repo / "examples" / "tiny-cnn.yaml").read_text())
    data["variants"]["weights"] = ["none", "palette6"]
    data["measure"] = {"warmup": 1, "iterations": 3}
    spec = tmp_path / "tiny-cnn.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = mlfarm("qualify", spec, "--format", "json", "--json")
    assert result.exit_code in (0, 1), result.err
    verdicts = result.json()["report"]["verdicts"]
    # a CNN has no attention: the iPhone's Neural Engine is not ruled out for `original` attention
    assert {v["device_key"] for v in verdicts if v["job_status"] == "ok"} == {"host", "virtual:iphone-12"}
