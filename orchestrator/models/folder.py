"""A local diffusers pipeline folder (``model_index.json`` plus one subfolder per component).

    my-pipeline/
    ├── model_index.json          {"unet": ["diffusers", "UNet2DConditionModel"], ...}
    ├── text_encoder/             config.json + model.safetensors          (CLIPTextModel)
    ├── unet/                     config.json + diffusion_pytorch_model.safetensors
    ├── vae/                      config.json + diffusion_pytorch_model.safetensors (AutoencoderKL)
    └── scheduler/                scheduler_config.json (num_train_timesteps, optional)

The cache identity is a fingerprint of file names, sizes and modification times (cheap); the weights hash
reads the files (build time).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.models.components import COMPONENTS, ComponentFacts, facts_from_config
from orchestrator.models.source import ModelSource, SourceProblem, kind

if TYPE_CHECKING:
    from torch import nn

# The library class each component kind is loaded with; a folder naming another class is refused.
SUPPORTED_CLASSES = {"text_encoder": "CLIPTextModel", "unet": "UNet2DConditionModel", "vae_decoder": "AutoencoderKL"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceProblem(f"cannot read {path}: {exc}", "check the file is valid JSON") from None
    if not isinstance(data, dict):
        raise SourceProblem(f"{path}: expected a JSON object", "check the file is a diffusers config")
    return data


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def _fingerprint(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


class FolderSource(ModelSource):
    """A diffusers pipeline on disk. ``id`` is the resolved path; ``revision`` fingerprints its files."""

    def __init__(self, root: Path, *, source_id: str | None = None, revision: str | None = None) -> None:
        if not (root / "model_index.json").is_file():
            raise SourceProblem(f"{root} is not a diffusers pipeline folder (no model_index.json)",
                                "point model.source at a folder saved with DiffusionPipeline.save_pretrained, "
                                "or use builtin:tiny-sd or hf://org/repo@revision")
        self.root = root
        self.index = read_json(root / "model_index.json")
        self.id = source_id or str(root)
        self.revision = revision or "stat:" + _fingerprint(root, [root / "model_index.json", *self._all_files()])

    def _all_files(self) -> list[Path]:
        return [f for c in self.components() for f in _files(self.folder(c))]

    def folder(self, component: str) -> Path:
        return self.root / kind(component).subfolder

    def components(self) -> tuple[str, ...]:
        return tuple(c for c, k in COMPONENTS.items()
                     if k.subfolder in self.index and (self.root / k.subfolder).is_dir())

    def _check(self, component: str) -> None:
        if component not in self.components():
            raise SourceProblem(f"{self.id} has no {kind(component).subfolder}/ component for {component!r}",
                                f"use one of: {', '.join(self.components()) or '(none)'}")
        entry = self.index.get(kind(component).subfolder)
        cls = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        if cls != SUPPORTED_CLASSES[component]:
            raise SourceProblem(f"{self.id}: {component} is a {cls}, mlfarm exports {SUPPORTED_CLASSES[component]}",
                                "use a Stable Diffusion 1.x/2.x pipeline")

    def facts(self, component: str) -> ComponentFacts:
        self._check(component)
        config = read_json(self.folder(component) / "config.json")
        scheduler = self.root / "scheduler" / "scheduler_config.json"
        if component == "unet" and scheduler.is_file():
            config = {**config, "num_train_timesteps": read_json(scheduler).get("num_train_timesteps", 1000)}
        return facts_from_config(component, config)

    def cache_identity(self, component: str) -> str:
        self._check(component)
        return "stat:" + _fingerprint(self.root, [self.root / "model_index.json", *_files(self.folder(component))])

    def _load(self, component: str) -> nn.Module:
        import torch

        self._check(component)
        folder = str(self.folder(component))
        if component == "text_encoder":
            from transformers import CLIPTextModel

            model: nn.Module = CLIPTextModel.from_pretrained(folder, dtype=torch.float32)
        else:
            from diffusers import AutoencoderKL, UNet2DConditionModel

            cls = UNet2DConditionModel if component == "unet" else AutoencoderKL
            model = cls.from_pretrained(folder, torch_dtype=torch.float32)
        return model.float().eval()

    def weights_hash(self, component: str) -> str:
        self._check(component)
        digest = hashlib.sha256()
        for p in _files(self.folder(component)):
            digest.update(f"{p.relative_to(self.root)}\n".encode())
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
        return digest.hexdigest()
