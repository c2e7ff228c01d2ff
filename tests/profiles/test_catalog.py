"""The built-in catalog against the facts file, ProductType matching, layering and user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.config import builtin_profiles_dir
from orchestrator.errors import ProfileError, UnknownProfileError
from orchestrator.profiles import host_profile, load_catalog
from tests.conftest import FACTS_DIR

FACTS = yaml.safe_load((FACTS_DIR / "apple-devices.yaml").read_text())["devices"]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog([builtin_profiles_dir()])


def test_catalog_covers_every_device_in_the_facts(catalog):
    assert len(catalog) >= 70
    assert len(catalog) == len(FACTS)
    names = {p.name for p in catalog}
    assert names == {d["name"] for d in FACTS}
    for family in ("iphone", "ipad", "mac"):
        folder = builtin_profiles_dir() / family
        assert {f.stem for f in folder.glob("*.yaml")} == {p.id for p in catalog if p.family == family}


@pytest.mark.parametrize("device", FACTS, ids=[d["name"] for d in FACTS])
def test_every_product_type_matches_its_model(catalog, device):
    for pt in device["product_types"]:
        p = catalog.match(pt)
        assert p.name == device["name"]
        assert p.chip == device["chip"]
        rams = device["ram_gb"] if isinstance(device["ram_gb"], list) else [device["ram_gb"]]
        assert p.ram_gb == min(rams)  # resolved to the smallest size when RAM is not given
        assert p.ram_assumed == (len(rams) > 1)


def test_figures_carry_over_from_the_facts(catalog):
    by_name = {p.name: p for p in catalog}
    for d in FACTS:
        p = catalog.find(by_name[d["name"]].model_id)
        base = next(x for x in catalog if x.name == d["name"])
        assert (base.ane.cores if base.ane else None) == d["ane_cores"]
        assert (base.ane.tops if base.ane else None) == d["ane_tops"]
        assert base.os.max == d["max_os"]
        assert p is not None and p.name == d["name"] and p.model_id == base.model_id


def test_unverified_values_stay_marked(catalog):
    iphone11 = catalog.get("iphone-11")
    assert "ane.tops" in iphone11.unverified  # Apple published no A13 TOPS figure
    assert "os.max" in iphone11.unverified
    mac = catalog.get("macbook-air-13-m2")
    assert "ram_gb" in mac.unverified and mac.memory.basis == "gpu-working-set"
    assert "gpu-working-set" in catalog.get("mac-mini-m4").memory.basis


def test_jetsam_limits_follow_the_published_observations(catalog):
    assert catalog.get("iphone-12").limit_mb() == 2048  # "more than 2GiB on a 4GiB device"
    assert catalog.get("iphone-14-pro-max").limit_mb() == 2867  # limit=2867MB observed
    assert catalog.get("iphone-13-pro").limit_mb(increased=True) > catalog.get("iphone-13-pro").limit_mb()
    assert catalog.get("iphone-se-2").limit_mb(increased=True) == catalog.get("iphone-se-2").limit_mb()  # unknown


def test_mac_with_ram_option_resolves_to_that_size(catalog):
    p = catalog.match("Mac14,2", ram_gb=8)
    assert p.id == "macbook-air-13-m2@8gb" and p.ram_gb == 8 and not p.ram_assumed
    big = catalog.match("Mac14,2", ram_gb=24)
    assert big.limit_mb() > p.limit_mb()
    assert p.limit_mb() == int(8 * 1024 * 0.67)  # GPU working set fraction for small Macs
    with pytest.raises(UnknownProfileError, match="ships with 8, 16, 24 GB"):
        catalog.match("Mac14,2", ram_gb=12)


def test_ipad_pro_sizes_have_their_own_limits(catalog):
    small, large = catalog.get("ipad-pro-m1@8gb"), catalog.get("ipad-pro-m1@16gb")
    assert small.limit_mb() < large.limit_mb()
    assert large.limit_mb(increased=True) == 12288
    with pytest.raises(UnknownProfileError, match="no '32gb' RAM option"):
        catalog.get("ipad-pro-m1@32gb")


def test_unknown_product_type_suggests_the_closest_and_how_to_add(catalog):
    with pytest.raises(UnknownProfileError) as info:
        catalog.match("iPhone13,9")
    err = info.value
    assert "iPhone13,9" in err.message
    assert "iPhone13," in err.fix and "mlfarm profiles check" in err.fix
    assert err.suggestions and all(s.startswith("iPhone13,") for s in err.suggestions)


def test_unknown_profile_id_suggests(catalog):
    with pytest.raises(UnknownProfileError) as info:
        catalog.get("iphone-12-pro-maxx")
    assert "iphone-12-pro-max" in info.value.fix


def _write(folder: Path, rel: str, text: str) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


PHONE = """
id: {id}
name: {name}
family: iphone
product_types: ["{pt}"]
chip: A14 Bionic
ram_gb: 4
memory: {{app_limit_mb: {limit}, source: "lab measurement", basis: jetsam-observed}}
os: {{name: iOS, max: 17}}
sources: [lab]
"""


def test_user_profile_overrides_builtin_by_id(tmp_path):
    _write(tmp_path, "iphone/iphone-12.yaml", PHONE.format(id="iphone-12", name="iPhone 12 (lab)",
                                                           pt="iPhone13,2", limit=1900))
    catalog = load_catalog([builtin_profiles_dir(), tmp_path])
    assert catalog.get("iphone-12").limit_mb() == 1900
    assert catalog.match("iPhone13,2").name == "iPhone 12 (lab)"
    assert catalog.origin("iphone-12") != catalog.origin("iphone-13")


def test_product_type_claimed_twice_across_folders_is_an_error(tmp_path):
    _write(tmp_path, "iphone/my-phone.yaml", PHONE.format(id="my-phone", name="Mine", pt="iPhone13,2", limit=1900))
    with pytest.raises(ProfileError) as info:
        load_catalog([builtin_profiles_dir(), tmp_path])
    assert "iPhone13,2" in info.value.message and "my-phone" in info.value.message


def test_duplicate_ids_in_one_folder(tmp_path):
    _write(tmp_path, "iphone/a.yaml", PHONE.format(id="a", name="A", pt="X1,1", limit=1000))
    _write(tmp_path, "other/a.yaml", PHONE.format(id="a", name="A2", pt="X1,2", limit=1000))
    with pytest.raises(ProfileError, match="duplicate id 'a'"):
        load_catalog([tmp_path])


def test_host_profile_uses_the_cgroup_limit_when_lower():
    p = host_profile(total_bytes=16 * 2**30, cgroup_bytes=4 * 2**30)
    assert p.id == "host" and p.family == "host"
    assert p.limit_mb() == 4096 and p.memory.basis == "host-cgroup"
    unlimited = host_profile(total_bytes=16 * 2**30, cgroup_bytes=None)
    assert unlimited.limit_mb() == 16384 and unlimited.memory.basis == "host-ram"
