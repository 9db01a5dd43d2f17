"""RaynetAdapter against the Raynet simulator over real HTTP: windows, paging during edits, batch
reads, lookups, batch writes with per-record errors, rate limits, the daily budget, auth."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.raynet.client import RaynetValidationError
from crmsync_pipelines.crm.raynet.simulator import RaynetSimulatorHandle, run_raynet_simulator
from crmsync_pipelines.crm.registry import load_crm_adapter
from crmsync_pipelines.errors import AuthError, ConfigError, ConflictError, QuotaExhaustedError
from crmsync_pipelines.simulator import Fault
from crmsync_tests.fixtures.raynet import RaynetFactory, shipped_raynet_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _persons(sim: RaynetSimulatorHandle, count: int, step: timedelta = timedelta(minutes=1)) -> list[str]:
    return [str(sim.store.insert("person", {"firstName": "P", "lastName": f"Person{i}",
                                            "contactInfo": {"email": f"p{i}@example.cz"}}, at=T0 + step * i)["id"])
            for i in range(count)]


def _call(extid: str, **fields: object) -> dict[str, object]:
    return {"extId": extid, "type": "call", "title": "Hovor", "scheduledFrom": "2026-03-01T12:00:00+00:00", **fields}


# -- windows ---------------------------------------------------------------------------------------
def test_window_edges_are_exact_to_the_second(raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory) -> None:
    ids = _persons(raynet_sim, 3, step=timedelta(seconds=1))
    adapter = make_raynet()
    got = [r["id"] for r in adapter.iter_contacts(T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))]
    assert got == [ids[1]]
    # The server is asked for a window widened by window_slack_s (60 s) and cut exactly here.
    query = raynet_sim.request_log[-1].query
    assert query["rowInfo.lastModifiedAt[GE]"] == "2026-03-01T11:59:01.000+00:00"
    assert query["rowInfo.lastModifiedAt[LT]"] == "2026-03-01T12:01:02.000+00:00"
    assert query["userAccount-id[EQ]"] == "" and query["dateFormat"] == "ISO8601"


def test_staff_with_user_accounts_are_not_contacts(raynet_sim: RaynetSimulatorHandle,
                                                   make_raynet: RaynetFactory) -> None:
    ids = _persons(raynet_sim, 2)
    assert sorted(r["id"] for r in make_raynet().iter_contacts()) == sorted(ids)
    everyone = make_raynet(contacts_exclude_users=False)
    assert len(list(everyone.iter_contacts())) == 2 + len(raynet_sim.user_ids)


def test_records_edited_while_paging_are_neither_skipped_nor_repeated(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    ids = _persons(raynet_sim, 10)
    adapter = make_raynet(page_size=3)
    # A closed window in the past: an edited record leaves it (it belongs to the edit's window).
    iterator = adapter.iter_contacts(T0, T0 + timedelta(minutes=10))
    first = [next(iterator)["id"] for _ in range(3)]
    raynet_sim.store.touch("person", int(ids[1]), {"lastName": "Edited"})  # already yielded
    raynet_sim.store.touch("person", int(ids[5]), {"lastName": "Edited"})  # not yet yielded: leaves the window
    rest = [r["id"] for r in iterator]
    assert first + rest == [i for i in ids if i != ids[5]], "offset paging would have skipped a record here"

    # An open window: the edited record moves to the end of the order and is still yielded once.
    iterator = adapter.iter_contacts(T0, None)
    first = [next(iterator)["id"] for _ in range(3)]
    for moved in (ids[0], ids[6]):
        raynet_sim.store.touch("person", int(moved), {"lastName": "Again"})
    rest = [r["id"] for r in iterator]
    assert sorted(first + rest) == sorted(ids) and len(first + rest) == len(ids)


def test_many_records_sharing_one_timestamp_page_through(raynet_sim: RaynetSimulatorHandle,
                                                        make_raynet: RaynetFactory) -> None:
    ids = _persons(raynet_sim, 7, step=timedelta(0))  # a bulk import: one minute, one second
    got = [r["id"] for r in make_raynet(page_size=2).iter_contacts(T0, T0 + timedelta(seconds=1))]
    assert got == ids


def test_naive_bounds_are_refused(make_raynet: RaynetFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(make_raynet().iter_accounts(datetime(2026, 3, 1), None))


# -- reads by id, field and text ---------------------------------------------------------------------
def test_batch_get_scans_pages_or_reads_details_whichever_is_cheaper(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    ids = _persons(raynet_sim, 30)
    adapter = make_raynet(page_size=10, contacts_exclude_users=False)
    raynet_sim.reset_log()
    found = adapter.get_contacts([ids[0], ids[2], "999999", "not-a-number"])
    assert set(found) == {ids[0], ids[2]}
    assert found[ids[0]] == adapter.get_contact(ids[0])
    # One list page (10 of 33 persons) found nothing more... then 2 detail reads beat 3 more pages.
    assert raynet_sim.request_count("GET", "/api/v2/person/") == 1
    raynet_sim.reset_log()
    many = adapter.get_contacts(ids[:25])
    assert set(many) == set(ids[:25])
    assert raynet_sim.request_count() == 3  # pages of 10: 33 persons, 25 wanted


def test_find_by_email_phone_and_refusals(raynet_demo_sim: RaynetSimulatorHandle,
                                          make_demo_raynet: RaynetFactory) -> None:
    adapter = make_demo_raynet()
    person = next(p for p in raynet_demo_sim.store.all("person") if not p.get("userAccount"))
    assert adapter.find_contact_by("contactInfo.email", person["contactInfo"]["email"].upper())["id"] == str(
        person["id"])
    typed = person["contactInfo"]["tel1"]  # "+420 601 234 567" as Raynet stores it
    national = typed.replace("+420", "").replace(" ", "")
    assert adapter.find_contact_by("contactInfo.tel1", national)["id"] == str(person["id"])
    assert raynet_demo_sim.request_log[-1].query["fulltext"] == national
    company = raynet_demo_sim.store.all("company")[0]
    assert adapter.find_account_by("regNumber", company["regNumber"])["id"] == str(company["id"])
    assert adapter.find_account_by("primaryAddress.contactInfo.email", "nobody@nowhere.cz") is None
    with pytest.raises(ValueError, match="cannot be looked up by 'notice'"):
        adapter.find_account_by("notice", "x")
    for empty in (None, "", "  "):
        with pytest.raises(ValueError):
            adapter.find_contact_by("contactInfo.email", empty)
    names = {r["lastName"] for r in adapter.search_contacts(person["lastName"].lower())}
    assert person["lastName"] in names


# -- writes ------------------------------------------------------------------------------------------
def test_batch_write_gives_each_bad_record_its_own_error_with_the_field(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    adapter = make_raynet()
    raynet_sim.reset_log()
    results = adapter.upsert_activities("extId", [
        _call("good-1"),
        _call("no-title", title=""),
        _call("unknown-field", duration=30),
        _call("ghost-person", person="424242"),
        _call("bad-status", status="DONE"),
        _call("good-2", type="sms"),
    ])
    assert isinstance(results[0], dict) and results[0]["id"].startswith("phoneCall:")
    assert isinstance(results[5], dict) and results[5]["id"].startswith("task:")
    fields = [getattr(r, "field", None) for r in results[1:5]]
    assert fields == ["title", "duration", "person", "status"]
    assert all(isinstance(r, RaynetValidationError) for r in results[1:5])
    # Pre-flight checks cost nothing; only the person refused by Raynet (HTTP 500) was sent.
    assert raynet_sim.request_count("PUT") == 3
    assert len(raynet_sim.store.all("phoneCall")) == 1 and len(raynet_sim.store.all("task")) == 1


def test_a_create_meeting_an_existing_extid_updates_that_record(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    make_raynet().upsert_activities("extId", [_call("dup-1")])
    raynet_sim.reset_log()
    # A second process without our ledger (lost response, wiped staging): create-first meets Raynet's refusal.
    [stored] = make_raynet().upsert_activities("extId", [_call("dup-1", title="Changed")])
    assert isinstance(stored, dict)
    assert [(r.method, r.status) for r in raynet_sim.request_log if r.path != "/api/v2/person/"] == [
        ("PUT", 500), ("GET", 200), ("POST", 200)]
    [record] = raynet_sim.store.all("phoneCall")
    assert record["title"] == "Changed" and record["extIds"] == ["daktela:dup-1"]


def test_update_by_ledger_id_is_one_post_and_ext_ids_with_dots_are_encoded(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    adapter = make_raynet()
    name = "activities_5f1e.12345678"
    [created] = adapter.upsert_activities("extId", [_call(name)])
    raynet_sim.reset_log()
    [updated] = adapter.upsert_activities("extId", [{**_call(name, status="COMPLETED",
                                                            completed="2026-03-01T12:05:00+01:00"),
                                                     "id": created["id"]}])
    post = ("POST", f"/api/v2/phoneCall/{created['id'][10:]}/")
    assert [(r.method, r.path) for r in raynet_sim.request_log] == [post]
    assert updated["completed"] == "2026-03-01T11:05:00+00:00"
    assert adapter.find_activity_by("extId", name)["status"] == "COMPLETED"
    assert adapter.find_activity_by("extId", "activities_unknown") is None


# -- limits -------------------------------------------------------------------------------------------
def test_429_with_retry_after_is_waited_out_then_retried(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    sleeps: list[float] = []
    adapter = make_raynet(sleeps=sleeps)
    raynet_sim.add_fault(Fault.parse("GET /api/v2/company/=429:2"))
    assert list(adapter.iter_accounts()) == []
    assert sleeps == [2.0]
    assert [r.status for r in raynet_sim.request_log] == [429, 200]
    raynet_sim.add_fault(Fault.parse("GET /api/v2/company/=429:3600"))  # longer than max_retry_after_s
    with pytest.raises(QuotaExhaustedError):
        list(adapter.iter_accounts())


def test_5xx_outages_are_retried_but_business_500s_are_not(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    sleeps: list[float] = []
    adapter = make_raynet(sleeps=sleeps)
    raynet_sim.add_fault(Fault.parse("GET /api/v2/person/=503x2"))
    assert len(list(adapter.iter_contacts())) == 0
    assert len(sleeps) == 2
    raynet_sim.reset_log()
    [refused] = adapter.upsert_activities("extId", [_call("x", person="999")])
    assert isinstance(refused, RaynetValidationError) and raynet_sim.request_count("PUT") == 1


def test_daily_budget_exhausted_stops_the_batch_after_one_refusal(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    adapter = make_raynet()
    adapter.upsert_activities("extId", [_call("before")])
    raynet_sim.exhaust_quota()  # other integrations spent today's budget
    raynet_sim.reset_log()
    results = adapter.upsert_activities("extId", [_call(f"a{i}") for i in range(5)])
    assert all(isinstance(r, QuotaExhaustedError) for r in results)
    assert [r.status for r in raynet_sim.request_log] == [429]
    error = results[0]
    assert isinstance(error, QuotaExhaustedError) and error.retry_after_s is not None
    assert 0 < error.retry_after_s <= 86_400
    assert adapter.usage()["quota_exhausted"] is True and adapter.usage()["budget_remaining"] == 0
    with pytest.raises(QuotaExhaustedError):
        adapter.get_contact("1")
    assert raynet_sim.request_count() == 1  # nothing more was sent


def test_older_503_quota_answer_is_recognised() -> None:
    with run_raynet_simulator(seed=None, quota_status=503, daily_limit=1) as sim:
        from crmsync_pipelines.crm.raynet import RaynetAdapter, RaynetSettings

        sim.store.insert("company", {"name": "X"})
        adapter = RaynetAdapter(RaynetSettings.parse(sim.settings()), sleep=lambda _s: None)
        sim.exhaust_quota()
        with pytest.raises(QuotaExhaustedError):
            adapter.get_account("1")
        adapter.close()


# -- credentials and secrets -------------------------------------------------------------------------
def test_bad_credentials_fail_once_without_retries_or_leaks(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-key-7f3c9e1d"
    adapter = make_raynet(api_key=secret)
    caplog.set_level(logging.DEBUG)
    assert adapter.ping() is False
    with pytest.raises(AuthError) as refused:
        list(adapter.iter_contacts())
    results = adapter.upsert_activities("extId", [_call("a"), _call("b")])
    assert all(isinstance(r, AuthError) for r in results)
    assert raynet_sim.request_count() == 1, "after a refusal nothing is sent (Raynet blocks the IP after 20)"
    assert secret not in str(refused.value) and secret not in caplog.text and secret not in repr(adapter.settings)
    assert all(secret not in str(r.headers) for r in raynet_sim.request_log)


def test_the_simulator_blocks_an_ip_after_twenty_bad_logins(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    for _ in range(20):
        assert make_raynet(api_key="bad-key-123").ping() is False
    assert make_raynet().ping() is False  # the right key, but the address is blocked
    assert raynet_sim.request_log[-1].status == 403
    raynet_sim.clock.advance(timedelta(minutes=61))
    assert make_raynet().ping() is True


def test_settings_are_validated_with_the_key_path(raynet_sim: RaynetSimulatorHandle) -> None:
    good = {"adapter": "raynet", **raynet_sim.settings()}
    cases = {
        "instance_name": ("Moje CRM", "not a Raynet instance name"),
        "api_key": ("   ", "must not be empty"),
        "username": ("integrace", "login e-mail"),
        "base_url": ("http://app.raynet.cz/api/v2/", "must use https"),
        "page_size": (5000, "1..1000"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ConfigError, match=message) as refused:
            load_crm_adapter({**good, key: value}, base_dir=Path.cwd())
        assert refused.value.path == f"crm.{key}"
        assert "sim-raynet-api-key" not in str(refused.value)
    missing = dict(good)
    del missing["api_key"]
    with pytest.raises(ConfigError) as refused:
        load_crm_adapter(missing, base_dir=Path.cwd())
    assert refused.value.path == "crm.api_key"
    with pytest.raises(ConfigError) as refused:
        load_crm_adapter({**good, "activities": {"entities": {"call": "sms"}}}, base_dir=Path.cwd())
    assert refused.value.path == "crm.activities.entities.call"


def test_crmsync_validate_catches_a_bad_instance_name(
    raynet_sim: RaynetSimulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shipped_raynet_config(raynet_sim, tmp_path, monkeypatch)
    ok = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "raynet (built-in)" in ok.output
    monkeypatch.setenv("RAYNET_INSTANCE", "Moje CRM")
    bad = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert bad.exit_code == 1
    assert "crm.instance_name" in bad.output and "Traceback" not in bad.output
    monkeypatch.delenv("RAYNET_API_KEY")
    missing = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert missing.exit_code == 1 and "RAYNET_API_KEY" in missing.output


def test_conflict_on_update_of_a_deleted_activity_is_reported(raynet_sim: RaynetSimulatorHandle,
                                                               make_raynet: RaynetFactory) -> None:
    adapter = make_raynet()
    created = adapter.create_activity(_call("gone"))
    raynet_sim.store.delete("phoneCall", int(created["id"].split(":")[1]))
    with pytest.raises(ConflictError):
        adapter.update_activity(created["id"], _call("gone", title="x"))


def test_batched_ext_lookup_scans_recent_activities_instead_of_one_get_each(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    adapter = make_raynet()
    names = [f"batch-{i}" for i in range(30)]
    adapter.upsert_activities("extId", [_call(n, type="call" if i % 2 else "sms") for i, n in enumerate(names)])
    raynet_sim.reset_log()
    found = adapter.find_activities_by_external_ids("extId", [*names, "never-written"])
    assert set(found) == set(names)
    assert found["batch-1"]["id"].startswith("phoneCall:") and found["batch-0"]["id"].startswith("task:")
    # One list page per configured entity (phoneCall, email, task) plus one confirmation of the missing one.
    assert raynet_sim.request_count("GET", "/api/v2/phoneCall/") == 1
    assert raynet_sim.request_count("GET", "/api/v2/task/") == 1
    assert raynet_sim.request_count() == 3 + 3  # "never-written" confirmed by extId on 3 entities


def test_ext_ids_with_slashes_spaces_and_czech_letters_round_trip(
    raynet_sim: RaynetSimulatorHandle, make_raynet: RaynetFactory
) -> None:
    adapter = make_raynet()
    names = ["a/b c.d", "hovor_žluťoučký:1", "x%y?z#w"]
    first = adapter.upsert_activities("extId", [_call(n) for n in names])
    assert all(isinstance(r, dict) for r in first), first
    for name, created in zip(names, first, strict=True):
        found = adapter.find_activity_by("extId", name)
        assert found is not None and found["id"] == created["id"] and found["extId"] == name
    # A second process without the ledger: create-first meets the duplicates and updates them.
    again = make_raynet().upsert_activities("extId", [_call(n, title="Znovu") for n in names])
    assert [r["id"] for r in again] == [r["id"] for r in first]  # type: ignore[index]
    assert len(raynet_sim.store.all("phoneCall")) == 3


def test_window_slack_keeps_edge_records_when_raynet_compares_minutes() -> None:
    from crmsync_pipelines.crm.raynet import RaynetAdapter, RaynetSettings

    with run_raynet_simulator(seed=None, filter_precision="minute") as sim:
        at = [T0 + timedelta(seconds=s) for s in (10, 40, 70)]
        ids = [str(sim.store.insert("person", {"firstName": "P", "lastName": f"L{i}"}, at=t)["id"])
               for i, t in enumerate(at)]
        window = (T0 + timedelta(seconds=20), T0 + timedelta(seconds=50))

        def got(slack: int) -> list[str]:
            adapter = RaynetAdapter(RaynetSettings.parse(sim.settings(window_slack_s=slack)))
            try:
                return [r["id"] for r in adapter.iter_contacts(*window)]
            finally:
                adapter.close()

        assert got(60) == [ids[1]]
        # Without the slack the server's minute comparison (12:00:40 < 12:00:50 -> 12:00 < 12:00) loses it.
        assert got(0) == []
