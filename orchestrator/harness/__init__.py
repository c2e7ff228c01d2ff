"""The harness contract (job/result JSON Schemas) and the Python host harness (``python -m orchestrator.harness``)."""

from orchestrator.harness.contract import HarnessResult, InputSpec, Job, load_job, load_outputs, read_result
from orchestrator.harness.inputs import make_input

__all__ = ["HarnessResult", "InputSpec", "Job", "load_job", "load_outputs", "make_input", "read_result"]
