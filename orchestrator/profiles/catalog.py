"""The device catalog: profile folders loaded, validated and indexed by id and ProductType.

Folders are layered: the built-in ``device_profiles/`` first, then each user folder (``--profiles DIR``,
``MLFARM_PROFILE_PATH``); a later profile with the same id replaces an earlier one. Inside one folder a
duplicate id, or a ProductType claimed by two profiles, is an error naming both files.

    catalog = load_catalog([builtin_profiles_dir(), Path("~/my-profiles")])
    catalog.get("ipad-pro-m1@16gb")         # resolved to 16 GB
    catalog.match("Mac14,2", ram_gb=8)       # -> macbook-air-13-m2@8gb
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import Problem, ProfileError, UnknownProfileError
from orchestrator.profiles.model import DeviceProfile
from orchestrator.validate import load_yaml, parse

FAMILY_FOLDERS = ("iphone", "ipad", "mac")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_profile_file(path: Path) -> tuple[DeviceProfile | None, list[Problem]]:
    """Parse one profile file; return the profile or every problem found in it."""
    name = _display(path)
    data, problems = load_yaml(path, display=name)
    if problems:
        return None, problems
    profile, problems = parse(DeviceProfile, data, file=name)
    if profile is None:
        return None, problems
    if profile.id != path.stem:
        return None, [Problem(name, "id", f"id {profile.id!r} does not match the file name {path.name!r}",
                              f"rename the file to {profile.id}.yaml or set id: {path.stem}")]
    if "@" in profile.id:
        return None, [Problem(name, "id", "a profile file id cannot carry an @NNgb suffix",
                              "list the RAM sizes in ram_gb instead")]
    folder = path.parent.name
    if folder in FAMILY_FOLDERS and folder != profile.family:
        return None, [Problem(name, "family", f"family {profile.family!r} but the file is in the {folder!r} folder",
                              f"move it to {profile.family}/ or fix family")]
    return profile, []


def _profile_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def check_folder(folder: Path) -> tuple[list[DeviceProfile], list[Problem]]:
    """Validate every profile in one folder, including duplicate ids and ProductTypes within it."""
    if not folder.is_dir():
        return [], [Problem(_display(folder), "", "not a folder", "give a folder of profile .yaml files")]
    profiles: list[tuple[Path, DeviceProfile]] = []
    problems: list[Problem] = []
    for path in _profile_files(folder):
        profile, found = load_profile_file(path)
        problems += found
        if profile is not None:
            profiles.append((path, profile))
    by_id: dict[str, Path] = {}
    by_pt: dict[str, tuple[Path, str]] = {}
    for path, p in profiles:
        if p.id in by_id:
            problems.append(Problem(_display(path), "id", f"duplicate id {p.id!r}, also in {_display(by_id[p.id])}",
                                    "ids must be unique within a folder"))
        by_id.setdefault(p.id, path)
        for pt in p.product_types:
            if pt in by_pt and by_pt[pt][1] != p.id:
                other = _display(by_pt[pt][0])
                problems.append(Problem(_display(path), "product_types",
                                        f"ProductType {pt!r} is also claimed by {other}",
                                        "a ProductType must belong to exactly one profile"))
            by_pt.setdefault(pt, (path, p.id))
    if not _profile_files(folder):
        problems.append(Problem(_display(folder), "", "no profile files (*.yaml) found"))
    return [p for _, p in profiles], problems


@dataclass(frozen=True)
class Catalog:
    """All known profiles, by id. Immutable; build one with ``load_catalog``."""

    profiles: tuple[DeviceProfile, ...]
    origins: tuple[tuple[str, str], ...] = ()  # (profile id, folder it came from)

    def __iter__(self) -> Iterator[DeviceProfile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    def ids(self) -> list[str]:
        return [p.id for p in self.profiles]

    def origin(self, profile_id: str) -> str | None:
        return dict(self.origins).get(profile_id.split("@", 1)[0])

    def find(self, profile_id: str) -> DeviceProfile | None:
        model_id, _, ram = profile_id.partition("@")
        for p in self.profiles:
            if p.id == model_id:
                if not ram:
                    return p.at_ram()
                try:
                    return p.at_ram(int(ram.removesuffix("gb")))
                except (KeyError, ValueError):
                    return None
        return None

    def get(self, profile_id: str) -> DeviceProfile:
        """A resolved profile (``id`` or ``id@NNgb``), or an error suggesting the closest ids."""
        found = self.find(profile_id)
        if found is not None:
            return found
        model_id, _, ram = profile_id.partition("@")
        base = next((p for p in self.profiles if p.id == model_id), None)
        if base is not None:
            sizes = ", ".join(f"{model_id}@{r}gb" for r in base.ram_options)
            raise UnknownProfileError(f"profile {model_id!r} has no {ram!r} RAM option", fix=f"use one of: {sizes}")
        close = difflib.get_close_matches(profile_id, self.ids(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownProfileError(f"unknown device profile {profile_id!r}",
                                  fix=hint + "run `mlfarm profiles` for the list", suggestions=close)

    def match(self, product_type: str, *, ram_gb: int | None = None) -> DeviceProfile:
        """The profile claiming ``product_type`` (e.g. ``iPhone13,2``), resolved to ``ram_gb`` when given."""
        for p in self.profiles:
            if product_type in p.product_types:
                if ram_gb is None:
                    return p.at_ram()
                if ram_gb in p.ram_options:
                    return p.at_ram(ram_gb)
                sizes = ", ".join(str(r) for r in p.ram_options)
                raise UnknownProfileError(
                    f"{product_type} ({p.name}) ships with {sizes} GB, not {ram_gb} GB",
                    fix="check the RAM size, or add a profile for this configuration with `mlfarm profiles check DIR`",
                )
        known = sorted({pt for p in self.profiles for pt in p.product_types})
        close = difflib.get_close_matches(product_type, known, n=3, cutoff=0.6)
        names = [f"{pt} ({self.match(pt).name})" for pt in close]
        hint = f"closest known: {', '.join(names)}. " if names else ""
        raise UnknownProfileError(
            f"no profile claims ProductType {product_type!r}",
            fix=hint + "to add it, write a profile YAML in a folder of your own, validate it with "
                       "`mlfarm profiles check DIR` and pass `--profiles DIR`",
            suggestions=close,
        )

    def with_profile(self, profile: DeviceProfile, origin: str = "runtime") -> Catalog:
        kept = tuple(p for p in self.profiles if p.id != profile.id)
        return Catalog((*kept, profile), (*self.origins, (profile.id, origin)))


def load_catalog(folders: Iterable[Path]) -> Catalog:
    """Load and validate folders in order; later folders override earlier ones by id.

    Raises ProfileError listing every problem in every folder. A ProductType claimed by two profiles
    after overriding (e.g. a user profile with a new id for a built-in device) is also an error.
    """
    merged: dict[str, DeviceProfile] = {}
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    for folder in folders:
        profiles, found = check_folder(Path(folder))
        problems += found
        for p in profiles:
            merged[p.id] = p
            origin[p.id] = _display(Path(folder))
    claimed: dict[str, str] = {}
    for p in merged.values():
        for pt in p.product_types:
            if pt in claimed and claimed[pt] != p.id:
                problems.append(Problem(origin[p.id], f"{p.id}.product_types",
                                        f"ProductType {pt!r} is claimed by both {claimed[pt]!r} and {p.id!r}",
                                        "override the built-in profile by reusing its id instead of adding a new one"))
            claimed.setdefault(pt, p.id)
    if problems:
        raise ProfileError(problems)
    families = ("iphone", "ipad", "mac", "host")
    ordered = sorted(merged.values(), key=lambda p: (families.index(p.family), p.year or 0, p.id))
    return Catalog(tuple(ordered), tuple((p.id, origin[p.id]) for p in ordered))
