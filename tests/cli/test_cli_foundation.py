"""The CLI surface of the foundation: profiles, spec, runs; --json everywhere; exit codes."""

from __future__ import annotations

from orchestrator.results import NewJob, ResultsStore


def test_profiles_json_lists_the_catalog_and_host(mlfarm):
    result = mlfarm("profiles", "--json")
    assert result.exit_code == 0
    data = result.json()
    assert len([p for p in data if p["family"] != "host"]) >= 70
    assert any(p["id"] == "host" for p in data)
    iphone12 = next(p for p in data if p["id"] == "iphone-12")
    assert iphone12["memory"]["app_limit_mb"] == 2048 and iphone12["ane"] == {"cores": 16, "tops": 11.0}


def test_profiles_table_marks_unverified_figures(mlfarm):
    result = mlfarm("profiles", "--family", "iphone")
    assert result.exit_code == 0
    assert "iphone-12" in result.out and "2,048" in result.out and "†" in result.out


def test_profiles_show_and_match(mlfarm):
    show = mlfarm("profiles", "show", "ipad-pro-m4@16gb", "--json")
    assert show.exit_code == 0 and show.json()["ram_gb"] == 16
    match = mlfarm("profiles", "match", "iPhone13,2", "--json")
    assert match.json()["profile"]["id"] == "iphone-12"
    mac = mlfarm("profiles", "match", "Mac14,2", "--ram-gb", "8")
    assert mac.exit_code == 0 and "macbook-air-13-m2@8gb" in mac.out


def test_unknown_product_type_exit_2(mlfarm):
    result = mlfarm("profiles", "match", "iPhone99,9")
    assert result.exit_code == 2
    assert "no profile claims ProductType 'iPhone99,9'" in result.err
    assert "mlfarm profiles check" in result.err


def test_bad_cli_arguments_exit_2(mlfarm):
    assert mlfarm("profiles", "--family", "watch").exit_code == 2
    assert mlfarm("nosuchcommand").exit_code == 2
    assert mlfarm("profiles", "match", "Mac14,2", "--ram-gb", "zero").exit_code == 2


def test_runs_lists_runs_with_job_counts(tmp_path, mlfarm):
    empty = mlfarm("runs", "--json")
    assert empty.exit_code == 0 and empty.json() == []
    with ResultsStore(tmp_path / "results.db") as store:
        run = store.create_run(spec_name="tiny-sd", spec_digest="abc")
        store.add_jobs(run, [NewJob("host", "unet", "fp16-none-original", "cpu_only")])
    data = mlfarm("runs", "--json").json()
    assert data[0]["id"] == run and data[0]["jobs"] == {"pending": 1}
    assert run in mlfarm("runs").out


def test_debug_shows_traceback_only_when_asked(mlfarm):
    quiet = mlfarm("profiles", "show", "nope")
    assert quiet.exit_code == 2 and "Traceback" not in quiet.err
    loud = mlfarm("--debug", "profiles", "show", "nope")
    assert loud.exit_code == 2 and "Traceback" in loud.err
