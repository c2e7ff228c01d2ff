"""Write the tiny-sd weights to disk the way users get them: a diffusers folder, and a Hugging Face Hub cache.

Both are produced with the libraries' own ``save_pretrained`` from the built-in tiny-sd modules, so a source
that loads them correctly must give exactly the built-in model's outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.models import load_source
from orchestrator.models.folder import SUPPORTED_CLASSES
from orchestrator.models.source import kind

LIBRARY = {"text_encoder": "transformers", "unet": "diffusers", "vae_decoder": "diffusers"}
ALL = ("text_encoder", "unet", "vae_decoder")


def save_pipeline(root: Path, components: Iterable[str] = ALL, *, index_components: Iterable[str] = ALL) -> Path:
    """A diffusers pipeline folder with the built-in tiny-sd weights for ``components``."""
    source = load_source("builtin:tiny-sd")
    root.mkdir(parents=True, exist_ok=True)
    for component in components:
        model: Any = source._load(component)
        model.save_pretrained(root / kind(component).subfolder)
    scheduler = root / "scheduler"
    scheduler.mkdir(exist_ok=True)
    (scheduler / "scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler",
                                                                 "num_train_timesteps": 1000}))
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "scheduler": ["diffusers", "PNDMScheduler"]}
    for component in index_components:
        index[kind(component).subfolder] = [LIBRARY[component], SUPPORTED_CLASSES[component]]
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    return root


def save_hub_cache(cache: Path, repo: str, commit: str, components: Iterable[str] = ALL,
                   *, ref: str = "main") -> Path:
    """The Hub cache layout: models--ORG--NAME/{blobs/<sha256>, snapshots/<commit>/... -> blobs, refs/<ref>}."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    staged = save_pipeline(storage / "staged", components)
    snapshot = storage / "snapshots" / commit
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = storage / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, blob)
        link = snapshot / path.relative_to(staged)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    shutil.rmtree(staged)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    return snapshot
