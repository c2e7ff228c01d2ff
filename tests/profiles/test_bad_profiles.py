"""Bad profile files: each gives exit 2 and a message naming file and key, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ProfileError
from orchestrator.profiles import check_folder, load_profile_file

GOOD = {
    "id": "lab-phone",
    "name": "Lab phone",
    "family": "iphone",
    "product_types": ["iPhone99,1"],
    "chip": "A14 Bionic",
    "ram_gb": 4,
    "memory": {"app_limit_mb": 2048, "source": "lab", "basis": "jetsam-observed"},
    "os": {"name": "iOS", "max": 17},
    "sources": ["lab"],
}


def write(folder: Path, data: object, name: str = "lab-phone.yaml") -> Path:
    path = folder / "iphone" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def with_(**changes: object) -> dict:
    data = {**GOOD, **changes}
    return {k: v for k, v in data.items() if v is not ...}


def test_good_profile_loads(tmp_path):
    profile, problems = load_profile_file(write(tmp_path, GOOD))
    assert problems == [] and profile is not None and profile.limit_mb() == 2048


@pytest.mark.parametrize("data, key, words", [
    (with_(memory={"app_limit_mb": "2GB", "source": "x", "basis": "jetsam-observed"}), "memory.app_limit_mb",
     'expected an integer > 0 or a mapping, got "2GB"'),
    (with_(ram_gb=-4), "ram_gb", "got -4"),
    (with_(colour="red"), "colour", "unknown key"),
    (with_(name=...), "name", "missing required key"),
    (with_(family="watch"), "family", "expected one of iphone, ipad, mac, host"),
    (with_(product_types="iPhone99,1"), "product_types", "expected a list"),
    (with_(ane={"cores": 16, "tops": "fast"}), "ane.tops", "expected a number > 0 or null"),
    (with_(id="lab-phone-2"), "id", "does not match the file name"),
    (with_(memory={"app_limit_mb": 9000, "source": "x", "basis": "jetsam-observed"}), "memory.app_limit_mb",
     "exceeds the device's 4 GB"),
    (with_(ram_gb=[8, 16], memory={"app_limit_mb": {8: 3000}, "source": "x", "basis": "jetsam-observed"}),
     "memory.app_limit_mb", "give one limit per RAM size"),
    (with_(unverified=["colour"]), "unverified", "not a key that can be marked"),
])
def test_each_bad_profile_names_file_and_key(tmp_path, mlfarm, data, key, words):
    write(tmp_path, data)
    result = mlfarm("profiles", "check", tmp_path)
    assert result.exit_code == 2
    assert "lab-phone.yaml" in result.err
    assert key in result.err
    assert words in result.err.replace("\n", " ") or words in " ".join(result.err.split())
    assert "Traceback" not in result.err


@pytest.mark.parametrize("text, words", [
    ("", "file is empty"),
    ("id: [unclosed", "invalid YAML: line"),
    ("- just\n- a list\n", "expected a mapping"),
    ("id: a\nid: b\n", "duplicate key 'id'"),
    ("!!python/object:os.system {}", "invalid YAML"),
])
def test_broken_files(tmp_path, mlfarm, text, words):
    write(tmp_path, text)
    result = mlfarm("profiles", "check", tmp_path, "--json")
    assert result.exit_code == 2
    assert words in result.err
    error = result.json()["error"]
    assert error["type"] == "ProfileError"
    assert error["problems"][0]["file"].endswith("lab-phone.yaml")


def test_all_problems_are_reported_at_once(tmp_path, mlfarm):
    write(tmp_path, with_(ram_gb="four", chip=7, colour="red"))
    result = mlfarm("profiles", "check", tmp_path, "--json")
    keys = {p["key"] for p in result.json()["error"]["problems"]}
    assert {"ram_gb", "chip", "colour"} <= keys


def test_duplicate_product_type_between_two_files(tmp_path, mlfarm):
    write(tmp_path, GOOD)
    write(tmp_path, with_(id="lab-phone-b"), name="lab-phone-b.yaml")
    result = mlfarm("profiles", "check", tmp_path)
    assert result.exit_code == 2 and "iPhone99,1" in result.err and "also claimed by" in result.err


def test_check_accepts_a_valid_private_folder(tmp_path, mlfarm):
    write(tmp_path, GOOD)
    result = mlfarm("profiles", "check", tmp_path, "--json")
    assert result.exit_code == 0
    assert result.json()["profiles"] == [{"id": "lab-phone", "name": "Lab phone", "overrides_builtin": False}]


def test_global_profiles_option_adds_user_profiles(tmp_path, mlfarm):
    write(tmp_path, GOOD)
    result = mlfarm("--profiles", tmp_path, "profiles", "match", "iPhone99,1", "--json")
    assert result.exit_code == 0 and result.json()["profile"]["id"] == "lab-phone"
    broken = tmp_path / "broken"
    write(broken, "id: [")
    result = mlfarm("--profiles", broken, "profiles")
    assert result.exit_code == 2 and "invalid YAML" in result.err


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
documents = st.one_of(
    yaml_values.map(lambda v: yaml.safe_dump(v)),
    st.fixed_dictionaries({}, optional={k: yaml_values for k in GOOD}).map(lambda d: yaml.safe_dump({**GOOD, **d})),
    st.text(max_size=200),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=documents)
def test_random_yaml_never_raises_anything_but_problems(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    path = write(folder, text)
    profile, problems = load_profile_file(path)
    assert (profile is None) == bool(problems)
    for p in problems:
        assert p.file.endswith("lab-phone.yaml") and isinstance(p.message, str)
    _, folder_problems = check_folder(folder)
    if folder_problems:
        err = ProfileError(folder_problems)
        assert err.exit_code == 2 and "lab-phone.yaml" in err.message
