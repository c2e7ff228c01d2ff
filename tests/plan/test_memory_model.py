"""The memory model's parts from a hand-built program: the executor's weight copies and fp16 temporaries (bytes,
turned into MB here), the two runtimes' predictions, and calibration per component."""

from __future__ import annotations

import pytest

from orchestrator.mil.analysis import analyze_program
from orchestrator.mil.program import Op, Program, TensorType
from orchestrator.plan.memory import Overheads, predict
from orchestrator.plan.model import ArtifactFacts
from orchestrator.variants import Variant

MB = 1024 * 1024


def hand_program() -> Program:
    """x fp32[1,256] -> cast fp16 -> linear(W fp16[512,256], b fp16[512]) -> relu -> matmul with a palettized
    weight (uint4 indices [512,512], LUT) -> cast fp32 -> y."""
    types = {
        "x": TensorType((1, 256), "fp32"), "x16": TensorType((1, 256), "fp16"),
        "W": TensorType((512, 256), "fp16"), "b": TensorType((512,), "fp16"),
        "h": TensorType((1, 512), "fp16"), "r": TensorType((1, 512), "fp16"),
        "idx": TensorType((512, 512), "uint4"), "lut": TensorType((16,), "fp16"),
        "P": TensorType((512, 512), "fp16"), "m": TensorType((1, 512), "fp16"), "y": TensorType((1, 512), "fp32"),
    }
    ops = (
        Op("constexpr_lut_to_dense", "decompress", {"indices": "idx", "lut": "lut"}, ("P",)),
        Op("cast", "to16", {"x": "x"}, ("x16",)),
        Op("linear", "fc", {"x": "x16", "weight": "W", "bias": "b"}, ("h",)),
        Op("relu", "act", {"x": "h"}, ("r",)),
        Op("matmul", "mm", {"x": "r", "y": "P"}, ("m",)),
        Op("cast", "to32", {"x": "m"}, ("y",)),
    )
    constants = {"W": None, "b": None, "idx": None, "lut": None}  # values are never read by the analysis
    return Program(source="hand-built", function="main", opset="iOS18", inputs=("x",), outputs=("y",),
                   types=types, constants=constants, ops=ops)


def test_executor_weights_are_the_loaded_constants_plus_fp32_copies():
    a = analyze_program(hand_program())
    loaded = 512 * 256 * 2 + 512 * 2 + 512 * 512 * 1 + 16 * 2  # fp16 W, b; uint4 indices unpacked to a byte; LUT
    copies = 4 * (512 * 256 + 512 + 512 * 512)  # fp32 copies of W, b and the decompressed P
    assert a.executor_weights_bytes == loaded + copies
    assert a.weights_bytes_decompressed == 2 * (512 * 256 + 512 + 512 * 512)  # what Core ML holds, fp16


def test_fp16_kernels_add_their_fp32_temporaries_to_the_liveness_peak():
    a = analyze_program(hand_program())
    # liveness, bytes live per op (fp16 held; x and y are fp32: a model input and an explicit cast to fp32):
    # to16 x+x16, fc x16+h, act h+r, mm r+m, to32 m+y
    live = {"to16": 1024 + 512, "fc": 512 + 1024, "act": 1024 + 1024, "mm": 1024 + 1024, "to32": 1024 + 2048}
    assert a.activation_peak_bytes == max(live.values()) == live["to32"]
    # the executor adds an fp32 copy of each fp16 input and the fp32 output before rounding; relu runs natively
    # in fp16 (nothing), and to32's fp32 output is the held tensor itself (only m's copy)
    extra = {"to16": 4 * 256, "fc": 4 * 256 + 4 * 512, "act": 0, "mm": 4 * 512 + 4 * 512, "to32": 4 * 512}
    executor = {op: live[op] + extra[op] for op in live}
    assert a.executor_activation_peak_bytes == max(executor.values()) == executor["mm"]
    assert a.executor_activation_peak_bytes / MB == pytest.approx(6144 / MB)


def facts(a) -> ArtifactFacts:
    return ArtifactFacts("unet", "fp16-palette4-original", a.weights_bytes_stored, a.weights_bytes_decompressed,
                         a.activation_peak_bytes, float(a.flops), executor_weights_bytes=a.executor_weights_bytes,
                         executor_activation_peak_bytes=a.executor_activation_peak_bytes)


def test_the_two_runtimes_predict_from_their_own_figures():
    a = analyze_program(hand_program())
    f, v = facts(a), Variant.parse("fp16-palette4-original")
    table = Overheads({"coreml": {"iphone": {"all": 150.0}}, "mil-executor": {"iphone": {"all": 30.0}},
                       "components": {"mil-executor": {"unet": 12.5}}})
    kw = {"os_name": "iOS", "os_major": 16, "compute_units": "all", "family": "iphone", "has_ane": True,
          "overheads": table, "app_mb": 25.0}
    device = predict(f, v, runtime="coreml", **kw)
    emulation = predict(f, v, runtime="mil-executor", **kw)
    assert device.weights_mb == pytest.approx(a.weights_bytes_decompressed / MB)  # iOS 16: decompressed at load
    assert device.total_mb == pytest.approx(25 + a.weights_bytes_decompressed / MB + a.activation_peak_bytes / MB + 150)
    assert emulation.total_mb == pytest.approx(
        25 + a.executor_weights_bytes / MB + a.executor_activation_peak_bytes / MB + 30 + 12.5)


def test_manifests_without_executor_figures_fall_back_to_the_weight_figures():
    old = ArtifactFacts("unet", "fp16-none-original", 10 * MB, 10 * MB, 5 * MB, 1e9)
    kw = {"os_name": "iOS", "os_major": 17, "compute_units": "all", "family": "iphone", "has_ane": True,
          "overheads": Overheads({"mil-executor": {"iphone": {"all": 0.0}}})}
    fp16 = predict(old, Variant.parse("fp16-none-original"), runtime="mil-executor", **kw)
    assert fp16.weights_mb == pytest.approx(10 + 20)  # the loaded fp16 constants and their fp32 copies
    fp32 = predict(old, Variant.parse("fp32-none-original"), runtime="mil-executor", **kw)
    assert fp32.weights_mb == pytest.approx(10)  # fp32 constants are shared with the program, not copied


def test_calibration_fits_each_component_its_own_offset():
    prior = Overheads({"mil-executor": {"host": {"cpu_only": 31.0}}})
    residuals = {"text_encoder": (10.0, 11.0, 12.0), "unet": (30.0, 31.0, 35.0), "vae_decoder": (20.0, 21.0, 22.0)}
    obs = [(comp, r) for comp, values in residuals.items() for r in values]
    fitted = prior.refit([("mil-executor", "host", "cpu_only", r) for _, r in obs],
                         [("mil-executor", comp, r) for comp, r in obs])
    assert fitted.get("mil-executor", "host", "cpu_only") == 21.0  # median of all nine residuals
    for comp, values in residuals.items():  # base + offset = the component's own median residual
        assert fitted.get("mil-executor", "host", "cpu_only", comp) == pytest.approx(sorted(values)[1])
    assert fitted.component_offset("mil-executor", "unet") == 10.0
    two_only = prior.refit([], [("mil-executor", "vae_decoder", 50.0), ("mil-executor", "vae_decoder", 60.0)])
    assert two_only.component_offset("mil-executor", "vae_decoder") == 0.0  # fewer than 3: no offset
    assert fitted.get("coreml", "iphone", "all") == prior.get("coreml", "iphone", "all")  # Core ML untouched
