"""Release specs: the YAML a user writes to describe a release (model, variants, devices, gates)."""

from orchestrator.spec.loader import SPEC_CHECKS, DeviceRef, load_spec, parse_device_refs
from orchestrator.spec.model import ReleaseSpec, TensorSpec

__all__ = ["SPEC_CHECKS", "DeviceRef", "ReleaseSpec", "TensorSpec", "load_spec", "parse_device_refs"]

# Model sources contribute the component/shape check to SPEC_CHECKS; importing them here (at the end, after
# SPEC_CHECKS exists) makes every load_spec run it. orchestrator.models does not import torch.
import orchestrator.models  # noqa: F401
