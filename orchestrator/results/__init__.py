"""The results store (SQLite): runs, devices, artifacts, jobs, measurements and events."""

from orchestrator.results.store import (
    DeviceRow,
    Event,
    EventRow,
    JobRow,
    Measurement,
    NewJob,
    ResultsStore,
    RunRow,
)

__all__ = ["DeviceRow", "Event", "EventRow", "JobRow", "Measurement", "NewJob", "ResultsStore", "RunRow"]
