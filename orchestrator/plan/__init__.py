"""Plan: per-device variant selection with the memory model and rules, explained candidate by candidate."""

from orchestrator.plan.latency import History
from orchestrator.plan.memory import Overheads
from orchestrator.plan.model import ArtifactFacts, Candidate, DevicePlan, Plan, Reason
from orchestrator.plan.select import PlanTarget, make_plan

__all__ = ["ArtifactFacts", "Candidate", "DevicePlan", "History", "Overheads", "Plan", "PlanTarget", "Reason",
           "make_plan"]
