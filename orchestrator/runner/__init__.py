"""The runner: plan -> jobs on devices, in parallel, with retries, resume and one commit per job."""

from orchestrator.runner.engine import Runner, RunSummary, WorkItem

__all__ = ["RunSummary", "Runner", "WorkItem"]
