"""``python:package.module:factory``: a model defined in the user's own code.

    model:
      source: python:mymodels.cnn:build        # mymodels/ next to the spec, or on PYTHONPATH
      components:
        classifier:
          inputs: {image: {shape: [1, 3, 64, 64]}}
          outputs: [logits]                    # optional; default "output" (one) or output_0, output_1, ...

The factory takes no arguments and returns an ``nn.Module`` (one component, named by the single key under
``model.components``) or a mapping name -> ``nn.Module``. It is called once per source (lazily: on the first
question that needs the modules), in fp32 eval mode; ``module()`` hands out deep copies so callers never share
one. Reference outputs come from the module itself, as for built-in models. Attention is not rewritten: the
``attention`` axis only labels the variant id.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.models.components import ComponentFacts, Exporter
from orchestrator.models.source import ModelSource, SourceProblem, state_dict_hash

if TYPE_CHECKING:
    from torch import nn

    from orchestrator.spec.model import ComponentSpec


def parse_python(text: str) -> tuple[str, str]:
    target = text.removeprefix("python:")
    module, sep, factory = target.partition(":")
    if not sep or not module or not factory.isidentifier():
        raise SourceProblem(f"{text!r} is not python:MODULE:FACTORY", "e.g. python:mymodels.cnn:build")
    return module, factory


class _Tupled:
    """forward(**inputs) -> a tuple, whatever the user's module returns (tensor, tuple or list)."""

    @staticmethod
    def wrap(model: nn.Module) -> nn.Module:
        import torch

        class Tupled(torch.nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
                out = self.inner(*args, **kwargs)
                return tuple(out) if isinstance(out, tuple | list) else (out,)

        return Tupled(model).eval()


def _forget_spec_modules(top: str) -> None:
    """Drop ``top`` and its submodules when an earlier spec's folder provided them (a folder no longer on
    sys.path): a module of the same name from another spec must not answer for this one. Installed packages
    and mlfarm itself are never dropped."""
    roots = [Path(p).resolve() for p in sys.path if p]
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        file = getattr(sys.modules[name], "__file__", None)
        if file and not any(Path(file).resolve().is_relative_to(r) for r in roots):
            del sys.modules[name]


class PythonSource(ModelSource):
    """See the module docstring. ``id`` is the source string; the cache identity hashes the module's file."""

    def __init__(self, text: str, folder: Path | None, specs: Mapping[str, ComponentSpec] | None = None) -> None:
        self.id = text
        self.revision = "python"
        self.module_name, self.factory_name = parse_python(text)
        self.folder = folder
        self.specs = dict(specs or {})
        self._modules: dict[str, nn.Module] | None = None
        self._imported: Any = None
        self._outputs: dict[str, tuple[str, ...]] = {}

    def _import(self) -> Any:
        if self._imported is not None:
            return self._imported
        added = self.folder is not None and str(self.folder) not in sys.path
        if added:
            sys.path.insert(0, str(self.folder))
            _forget_spec_modules(self.module_name.split(".")[0])
        try:
            self._imported = importlib.import_module(self.module_name)
            return self._imported
        except Exception as exc:  # ImportError, SyntaxError, anything the module raises at import
            raise SourceProblem(f"cannot import {self.module_name}: {type(exc).__name__}: {exc}",
                                f"put {self.module_name.replace('.', '/')}.py next to the spec or on PYTHONPATH"
                                ) from None
        finally:
            if added:
                sys.path.remove(str(self.folder))

    def modules(self) -> dict[str, nn.Module]:
        """name -> fp32 eval() module, from one call of the factory."""
        if self._modules is None:
            from torch import nn

            factory = getattr(self._import(), self.factory_name, None)
            if not callable(factory):
                raise SourceProblem(f"{self.module_name} has no function {self.factory_name!r}",
                                    f"define def {self.factory_name}() -> nn.Module in it")
            try:
                made = factory()
            except Exception as exc:  # the user's code: anything
                raise SourceProblem(f"{self.id} raised {type(exc).__name__}: {exc}",
                                    "fix the factory; it is called with no arguments") from None
            if isinstance(made, nn.Module):
                names = list(self.specs)
                made = {names[0] if len(names) == 1 else self.factory_name: made}
            if not isinstance(made, Mapping) or not made or not all(
                    isinstance(k, str) and isinstance(v, nn.Module) for k, v in made.items()):
                raise SourceProblem(f"{self.id} returned {type(made).__name__}, not an nn.Module or a mapping "
                                    "name -> nn.Module", "return the model (or a dict of them)")
            self._modules = {k: v.float().eval() for k, v in made.items()}
        return self._modules

    def components(self) -> tuple[str, ...]:
        return tuple(self.modules())

    def facts(self, component: str) -> ComponentFacts:
        return ComponentFacts(component)

    def input_names(self, component: str) -> tuple[str, ...]:
        return tuple(self.specs[component].inputs) if component in self.specs else ()

    def output_names(self, component: str) -> tuple[str, ...]:
        spec = self.specs.get(component)
        if spec is not None and spec.outputs:
            return spec.outputs
        if component not in self._outputs:
            count = len(self._probe(component))
            self._outputs[component] = ("output",) if count == 1 else tuple(f"output_{i}" for i in range(count))
        return self._outputs[component]

    def _probe(self, component: str) -> tuple[Any, ...]:
        import torch

        if component not in self.specs:
            raise SourceProblem(f"no inputs declared for {component}", "declare them under model.components")
        inputs = self.example_inputs(component, self.specs[component], 0)
        with torch.inference_mode():
            out = self.module(component)(**{k: torch.from_numpy(v.astype("float32") if v.dtype.kind == "f" else v)
                                            for k, v in inputs.items()})
        return tuple(out)

    def exporters(self, component: str) -> tuple[Exporter, ...]:
        # torch.export first: it keeps shapes static and needs no tracing of Python control flow; trace as fallback.
        return ("torch.export", "jit.trace")

    def module(self, component: str, attention: str = "original") -> nn.Module:
        return _Tupled.wrap(copy.deepcopy(self._module(component)))

    def _module(self, component: str) -> nn.Module:
        modules = self.modules()
        if component not in modules:
            raise SourceProblem(f"{self.id} has no component {component!r}", f"its components: {', '.join(modules)}")
        return modules[component]

    def _load(self, component: str) -> nn.Module:
        return self._module(component)

    def cache_identity(self, component: str) -> str:
        module = self._import()
        file = getattr(module, "__file__", None)
        text = Path(file).read_bytes() if file else self.id.encode()
        return hashlib.sha256(text + self.id.encode()).hexdigest()[:16]

    def weights_hash(self, component: str) -> str:
        return state_dict_hash(self._module(component))
