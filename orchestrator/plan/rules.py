"""Selection rules: small named objects, each rejecting a candidate with a sentence a user understands.

Each rule looks at one candidate in its device context and returns None (passes) or the reason. The list
``RULES`` is the order in which reasons are reported; every rule is evaluated so a rejected candidate shows
all of its reasons. The memory-fit rule lives in select.py because it needs the numbers it prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.plan.model import ArtifactFacts, MemoryPrediction, Runtime
from orchestrator.profiles.model import DeviceProfile
from orchestrator.variants import ATTENTION, COMPUTE_UNITS, PRECISIONS, WEIGHTS, Variant

GIB = 1024**3
ANE_MAX_UNCHUNKED_BYTES = 1 * GIB  # apple/ml-stable-diffusion README: chunk the UNet for the iOS NE unless <=6-bit
MOBILE = ("iphone", "ipad")


@dataclass(frozen=True)
class Context:
    profile: DeviceProfile
    os_name: str
    os_major: int
    runtime: Runtime
    variant: Variant
    compute_units: str
    facts: ArtifactFacts
    memory: MemoryPrediction
    min_psnr_db: float


class Rule(Protocol):
    @property
    def name(self) -> str: ...

    def check(self, ctx: Context) -> str | None: ...


def _os_label(os_name: str) -> str:
    return {"iPadOS": "iPadOS", "macOS": "macOS"}.get(os_name, "iOS")


@dataclass(frozen=True)
class OsRequirement:
    """The compression scheme (and the ML Program format) needs a minimum OS."""

    name: str = "os-version"

    def check(self, ctx: Context) -> str | None:
        if ctx.os_name not in ("iOS", "iPadOS", "macOS"):
            return None
        need = ctx.variant.min_os(ctx.os_name)
        if ctx.os_major >= need:
            return None
        scheme = WEIGHTS[ctx.variant.weights]
        what = {"per_grouped_channel": "grouped palettes", "per_tensor": "palettized weights",
                "per_channel": "int8 weights", "per_block": "block-wise int4 weights"}.get(scheme.granularity,
                                                                                           "ML Programs")
        label = _os_label(ctx.os_name)
        return f"needs {label} {need} for {what}; this device runs at most {label} {ctx.os_major}"


@dataclass(frozen=True)
class ComputeUnitsOs:
    """``cpu_and_ne`` exists from iOS 16 / macOS 13."""

    name: str = "compute-units-os"

    def check(self, ctx: Context) -> str | None:
        if ctx.os_name not in ("iOS", "iPadOS", "macOS"):
            return None
        need = COMPUTE_UNITS[ctx.compute_units].min_os.for_os(ctx.os_name)
        if ctx.os_major >= need:
            return None
        label = _os_label(ctx.os_name)
        return f"compute units {ctx.compute_units} need {label} {need}; this device runs at most {label} {ctx.os_major}"


@dataclass(frozen=True)
class NeuralEngineAvailable:
    """cpu_and_ne on a device without a Neural Engine Core ML can use (Intel Macs; A11's cannot be used)."""

    name: str = "neural-engine"

    def check(self, ctx: Context) -> str | None:
        if ctx.compute_units != "cpu_and_ne" or ctx.runtime != "coreml" or ctx.profile.has_usable_ane:
            return None
        why = "its A11 Neural Engine cannot be used by Core ML" if ctx.profile.chip.startswith("A11") \
            else "it has no Neural Engine"
        return f"compute units cpu_and_ne, but {why}"


@dataclass(frozen=True)
class AttentionOnMobileNeuralEngine:
    """``original`` attention on an iPhone/iPad Neural Engine: compilation stalls (ml-stable-diffusion #267, #271).

    Applies to components that compute attention (transformer families: SD UNets, text encoders, MMDiTs);
    for a model without any (a CNN), the attention axis is only a label and nothing stalls."""

    name: str = "attention-ane"

    def check(self, ctx: Context) -> str | None:
        if ctx.profile.family not in MOBILE or ctx.runtime != "coreml" or not ctx.facts.has_attention:
            return None
        if not COMPUTE_UNITS[ctx.compute_units].uses_ane or not ctx.profile.has_usable_ane:
            return None
        if ATTENTION[ctx.variant.attention].ane_mobile_ok or not PRECISIONS[ctx.variant.precision].ane_ok:
            return None
        return (f"{ctx.variant.attention} attention on the Neural Engine of an {ctx.profile.family} never finishes "
                "compiling (apple/ml-stable-diffusion #267, #271); use split_einsum(_v2) or cpu_and_gpu")


@dataclass(frozen=True)
class Fp32OnNeuralEngine:
    """fp32-typed programs never run on the Neural Engine."""

    name: str = "fp32-ane"

    def check(self, ctx: Context) -> str | None:
        if ctx.compute_units == "cpu_and_ne" and not PRECISIONS[ctx.variant.precision].ane_ok:
            return "fp32 programs cannot run on the Neural Engine; cpu_and_ne would run it on the CPU only"
        return None


@dataclass(frozen=True)
class QualityGate:
    """PSNR of the artifact's outputs against the fp32 PyTorch reference, from its manifest."""

    name: str = "quality"

    def check(self, ctx: Context) -> str | None:
        psnr = ctx.facts.psnr_db
        if psnr is None or psnr >= ctx.min_psnr_db:
            return None
        return f"PSNR {psnr:.1f} dB is below the {ctx.min_psnr_db:g} dB quality gate"


@dataclass(frozen=True)
class AneComponentSize:
    """On iOS/iPadOS the Neural Engine needs components under ~1 GB (fp16 size) unless weights are <= 6-bit;
    mlfarm does not chunk models (yet), so such candidates are rejected. Any family: the limit is the Neural
    Engine's, met first by SD UNets and MMDiTs but equally by any other component that large."""

    name: str = "ane-size"

    def check(self, ctx: Context) -> str | None:
        if ctx.profile.family not in MOBILE or ctx.runtime != "coreml":
            return None
        if not COMPUTE_UNITS[ctx.compute_units].uses_ane or not ctx.profile.has_usable_ane:
            return None
        size = ctx.facts.weights_bytes_decompressed  # the model's size in fp16, before compression
        if size <= ANE_MAX_UNCHUNKED_BYTES or WEIGHTS[ctx.variant.weights].bits <= 6:
            return None
        return (f"the {ctx.facts.component} is {size / GIB:.2f} GB in fp16: on the {ctx.profile.family} Neural Engine "
                "a component over ~1 GB must be chunked or compressed to 6 bits or fewer")


RULES: tuple[Rule, ...] = (
    OsRequirement(), ComputeUnitsOs(), NeuralEngineAvailable(), AttentionOnMobileNeuralEngine(),
    Fp32OnNeuralEngine(), AneComponentSize(), QualityGate(),
)
