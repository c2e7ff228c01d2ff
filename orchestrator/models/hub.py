"""``hf://org/repo@revision``: a diffusers pipeline on the Hugging Face Hub, fetched with snapshot_download.

Only the files of the components being built are fetched (allow-patterns), at the pinned revision, into the
Hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the library default). With ``HF_HUB_OFFLINE=1`` only
the cache is used (``local_files_only``), never the network. The environment is read when the source is
created, not when huggingface_hub is imported, so a caller (or a test) can point it at another cache.

The cache identity is the revision itself when it is a commit hash; a branch or tag is resolved to its
commit through the cache's ``refs/`` (offline) or one metadata call (online).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.models.components import COMPONENTS, ComponentFacts, facts_from_config
from orchestrator.models.folder import FolderSource, read_json
from orchestrator.models.source import ModelSource, SourceProblem, kind

if TYPE_CHECKING:
    from torch import nn

_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Duplicated weights in other formats/precisions that a pipeline repo often carries alongside safetensors.
IGNORE = ["*.bin", "*.ckpt", "*.msgpack", "*.onnx", "*.onnx_data", "*.pb", "*.h5", "*.fp16.*", "*non_ema*"]


@dataclass(frozen=True)
class HubOptions:
    cache_dir: Path | None
    offline: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubOptions:
        env = os.environ if env is None else env
        cache = env.get("HF_HUB_CACHE") or (str(Path(env["HF_HOME"]) / "hub") if env.get("HF_HOME") else None)
        offline = any(env.get(k, "").strip().lower() in ("1", "true", "yes", "on")
                      for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
        return cls(Path(cache).expanduser() if cache else None, offline)


def parse_hub(text: str) -> tuple[str, str]:
    """``hf://org/repo@rev`` -> (repo, rev)."""
    body = text.removeprefix("hf://")
    repo, sep, revision = body.partition("@")
    if not _REPO.fullmatch(repo):
        raise SourceProblem(f"{text!r} is not a Hub source", "write hf://ORG/REPO@REVISION")
    if not sep or not revision:
        raise SourceProblem(f"{text!r} does not pin a revision",
                            f"write hf://{repo}@COMMIT (a 40-character commit hash) so builds are reproducible")
    return repo, revision


def component_patterns(component: str) -> list[str]:
    sub = kind(component).subfolder
    patterns = ["model_index.json", f"{sub}/*.json", f"{sub}/*.safetensors"]
    return [*patterns, "scheduler/scheduler_config.json"] if component == "unet" else patterns


class HubSource(ModelSource):
    """A pinned Hub pipeline; files are fetched per component on first use."""

    def __init__(self, repo: str, revision: str, options: HubOptions) -> None:
        self.repo = repo
        self.id = f"hf://{repo}"
        self.revision = revision
        self.options = options
        self._commit: str | None = revision if _COMMIT.fullmatch(revision) else None

    def _cached(self, filename: str) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.repo, filename, cache_dir=self.options.cache_dir, revision=self.revision)
        return Path(found) if isinstance(found, str) else None

    def snapshot(self, patterns: list[str]) -> Path:
        """Download (or find in the cache) the files matching ``patterns``; return the snapshot folder."""
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = snapshot_download(self.repo, revision=self.revision, cache_dir=self.options.cache_dir,
                                     local_files_only=self.options.offline, allow_patterns=patterns,
                                     ignore_patterns=IGNORE)
        except LocalEntryNotFoundError as exc:
            why = "offline mode is on (HF_HUB_OFFLINE)" if self.options.offline else f"the Hub is unreachable ({exc})"
            raise SourceProblem(f"{self.id}@{self.revision} is not in the Hub cache "
                                f"({self.options.cache_dir or 'default cache'}) and {why}",
                                "run once with network access (unset HF_HUB_OFFLINE) or point HF_HUB_CACHE "
                                "at a cache that has it") from exc
        except (HfHubHTTPError, OSError) as exc:
            raise SourceProblem(f"cannot fetch {self.id}@{self.revision}: {exc}",
                                "check the repository name, the revision and your network/token") from exc
        self._commit = Path(path).name
        return Path(path)

    def cache_identity(self, component: str) -> str:
        if self._commit is None:
            self.snapshot(["model_index.json"])
        return f"commit:{self._commit}"

    def components(self) -> tuple[str, ...]:
        index = self._cached("model_index.json")
        if index is None:
            return tuple(COMPONENTS)  # unknown until downloaded; every kind is allowed
        data = read_json(index)
        return tuple(c for c, k in COMPONENTS.items() if k.subfolder in data)

    def facts(self, component: str) -> ComponentFacts | None:
        config = self._cached(f"{kind(component).subfolder}/config.json")
        if config is None:
            return None
        data = read_json(config)
        scheduler = self._cached("scheduler/scheduler_config.json") if component == "unet" else None
        if scheduler is not None:
            data = {**data, "num_train_timesteps": read_json(scheduler).get("num_train_timesteps", 1000)}
        return facts_from_config(component, data)

    def folder_source(self, component: str) -> FolderSource:
        root = self.snapshot(component_patterns(component))
        return FolderSource(root, source_id=self.id, revision=self.revision)

    def _load(self, component: str) -> nn.Module:
        return self.folder_source(component)._load(component)

    def weights_hash(self, component: str) -> str:
        return self.folder_source(component).weights_hash(component)
