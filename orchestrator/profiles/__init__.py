"""Device profiles: the catalog of Apple devices (``device_profiles/``) and the run-time ``host`` profile."""

from orchestrator.profiles.catalog import Catalog, check_folder, load_catalog, load_profile_file
from orchestrator.profiles.host import host_profile
from orchestrator.profiles.model import DeviceProfile

__all__ = ["Catalog", "DeviceProfile", "check_folder", "host_profile", "load_catalog", "load_profile_file"]
