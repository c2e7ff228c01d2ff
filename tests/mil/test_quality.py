"""PSNR: the formula, and the tiny-sd figures the executor measures against fp32 PyTorch, stored in manifests."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from orchestrator.mil import psnr
from orchestrator.mil.quality import Quality
from tests.fixtures.build import TINY_VARIANTS


def test_psnr_formula():
    ref = np.array([0.0, 2.0, -4.0, 1.0])
    noisy = ref + np.array([0.1, -0.1, 0.1, -0.1])  # rmse 0.1, peak 4 -> 20 log10(40)
    assert psnr(ref, noisy) == pytest.approx(20 * math.log10(40.0))
    assert psnr(ref, ref) == math.inf
    assert psnr(ref * 10, noisy * 10) == pytest.approx(psnr(ref, noisy))  # scale free
    assert psnr(ref, np.full(4, np.nan)) == -math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(ref, ref[:3])


def test_quality_section_is_json_safe_and_applies_the_gate():
    q = Quality({"a": 41.23456, "b": math.inf}, seed=3, precision="fp16", gate_db=35.0)
    data = json.loads(json.dumps(q.to_dict()))
    assert data["psnr_db"] == {"a": 41.235, "b": 200.0} and data["psnr_min_db"] == 41.235  # identical: capped
    assert data["passed"] is True and data["seed"] == 3 and data["precision"] == "fp16"
    assert Quality({"a": 30.0}, seed=0, precision="fp16", gate_db=35.0).passed is False


@pytest.mark.slow
def test_tiny_sd_psnr_per_component_and_variant_lands_in_the_manifests(mlfarm, tiny_store_copy, repo):
    result = mlfarm("--artifacts", tiny_store_copy.root, "analyze", repo / "examples" / "tiny-sd.yaml", "--json")
    data = result.json()
    checked = {(a["component"], a["variant"]): a for a in data["artifacts"] if a["quality"]}
    # a private copy of the session store: exactly the session's variants, every one analysed
    assert set(checked) == {(c, v) for c in ("text_encoder", "unet", "vae_decoder") for v in TINY_VARIANTS}
    psnr_of = {key: a["quality"]["psnr_min_db"] for key, a in checked.items()}
    for component in ("text_encoder", "unet", "vae_decoder"):
        fp32 = psnr_of[(component, "fp32-none-original")]
        fp16 = psnr_of[(component, "fp16-none-split_einsum_v2")]
        p6 = psnr_of[(component, "fp16-palette6-split_einsum_v2")]
        p4 = psnr_of[(component, "fp16-palette4-split_einsum_v2")]
        assert fp32 >= 60, component  # 200 (the cap) when bit-identical to PyTorch
        assert 50 <= fp16 < 100, component  # fp16 rounding of every op: a real, bounded loss
        assert p4 + 3 < p6 < fp16 - 3, (component, p4, p6, fp16)  # two fewer bits cost several dB
        assert p4 > 10, component  # still the same model, not noise
    # the gate (35 dB in the spec) fails palette4, so the command exits 1
    assert result.exit_code == 1 and data["passed"] is False
    for key, a in checked.items():
        entry = tiny_store_copy.get("tiny-sd", *key)
        assert entry.manifest["quality"]["psnr_min_db"] == a["quality"]["psnr_min_db"]
        assert entry.manifest["quality"]["seed"] == 0
        assert entry.manifest["analysis"]["activation_peak_bytes"] > 0
        assert entry.manifest["analysis"]["top_tensors"]
