"""mlfarm: qualify on-device Core ML releases for Apple devices.

The flow (see ``orchestrator/pipeline.py``): release spec -> build -> analyze -> plan -> run -> report.
"""

__version__ = "0.1.0"
