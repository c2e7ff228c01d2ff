"""Release specs: the YAML a user writes to describe a release (model, variants, devices, gates)."""

from orchestrator.spec.loader import SPEC_CHECKS, DeviceRef, load_spec, parse_device_refs
from orchestrator.spec.model import ReleaseSpec, TensorSpec

__all__ = ["SPEC_CHECKS", "DeviceRef", "ReleaseSpec", "TensorSpec", "load_spec", "parse_device_refs"]
