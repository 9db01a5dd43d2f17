"""HubSpotAdapter against the HubSpot simulator over real HTTP: windows, paging, the search cap,
batch partial failures, quotas, 429s, credentials, linking and settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crmsync_pipelines.crm.hubspot.adapter import HubSpotAdapter
from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings
from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimHandle, SimFault, run_hubspot_simulator
from crmsync_pipelines.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    NotSupportedError,
    QuotaExhaustedError,
    RecordValidationError,
)
from crmsync_tests.fixtures.hubspot import hubspot_adapter

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = "daktela_activity_name"


def _call(name: str, **fields: Any) -> dict[str, Any]:
    return {KEY: name, "channel": "call", "timestamp": "2026-11-27T10:00:00.000Z", **fields}


# -- windows --------------------------------------------------------------------------------
def test_window_edges_are_exact_to_the_millisecond(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    before = hubspot_sim.add_contact({"lastname": "Before"}, T0 - timedelta(milliseconds=1))
    at_since = hubspot_sim.add_contact({"lastname": "AtSince"}, T0)
    last_in = hubspot_sim.add_contact({"lastname": "LastIn"}, T0 + timedelta(hours=1) - timedelta(milliseconds=1))
    hubspot_sim.add_contact({"lastname": "AtUntil"}, T0 + timedelta(hours=1))
    got = [r["id"] for r in hubspot.iter_contacts(T0, T0 + timedelta(hours=1))]
    assert got == [at_since, last_in]
    assert [r["id"] for r in hubspot.iter_contacts(None, T0)] == [before]


def test_companies_window_uses_hs_lastmodifieddate(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    inside = hubspot_sim.add_company({"name": "Inside"}, T0)
    hubspot_sim.add_company({"name": "Outside"}, T0 + timedelta(days=1))
    hubspot_sim.app.reset_log()
    records = list(hubspot.iter_accounts(T0, T0 + timedelta(hours=1)))
    assert [r["id"] for r in records] == [inside] and records[0]["name"] == "Inside"
    [entry] = hubspot_sim.app.requests()
    filters = entry.body["filterGroups"][0]["filters"]
    assert {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(int(T0.timestamp() * 1000))} \
        in filters
    assert entry.body["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    assert "after" not in entry.body


def test_records_edited_during_paging_are_yielded_once_and_land_in_the_next_window(
        hubspot_sim: HubSpotSimHandle) -> None:
    adapter = hubspot_adapter(hubspot_sim, search_page_size=2)
    ids = [hubspot_sim.add_contact({"lastname": f"P{i}"}, T0 + timedelta(minutes=i)) for i in range(7)]
    until = T0 + timedelta(hours=1)
    stream = adapter.iter_contacts(T0, until)
    seen = [next(stream)["id"], next(stream)["id"]]
    edited_at = until + timedelta(minutes=5)
    hubspot_sim.touch("contacts", ids[0], {"jobtitle": "seen, then edited"}, edited_at)
    hubspot_sim.touch("contacts", ids[5], {"jobtitle": "edited before we got there"}, edited_at)
    seen += [r["id"] for r in stream]
    assert seen == [i for i in ids if i != ids[5]], "each record once; the one edited away belongs to a later window"
    later = [r["id"] for r in adapter.iter_contacts(until, until + timedelta(hours=1))]
    assert later == [ids[0], ids[5]]
    # An open-ended window sees an edited record exactly once too.
    stream = adapter.iter_contacts(T0, None)
    first = [next(stream)["id"] for _ in range(2)]
    hubspot_sim.touch("contacts", ids[6], {"jobtitle": "again"}, edited_at + timedelta(minutes=1))
    rest = [r["id"] for r in stream]
    assert sorted(first + rest, key=int) == ids and len(first + rest) == len(ids)
    adapter.close()


def test_search_cap_is_never_hit_by_window_reads() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, burst_limit=None, search_cap=5) as sim:
        ids = [sim.add_company({"name": f"Co {i}"}, T0 + timedelta(seconds=i)) for i in range(23)]
        # Paging a single query with `after` stops at the cap, as on HubSpot ...
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
            body = {"filterGroups": [], "limit": 2, "after": "6"}
            refused = http.post("/crm/v3/objects/companies/search", json=body)
            assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
        # ... while the adapter's keyset pages are fresh queries and see every record exactly once.
        sim.app.reset_log()
        adapter = hubspot_adapter(sim, search_page_size=2)
        got = [r["id"] for r in adapter.iter_accounts(T0, T0 + timedelta(hours=1))]
        assert got == ids
        assert sim.app.request_count("POST", "/crm/v3/objects/companies/search") == 12
        adapter.close()


def test_a_full_read_pages_the_list_endpoint(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    ids = [hubspot_sim.add_company({"name": f"Co {i}"}, T0 + timedelta(days=i % 5)) for i in range(230)]
    hubspot_sim.app.reset_log()
    assert [r["id"] for r in hubspot.iter_accounts(None, None)] == ids
    assert hubspot_sim.app.request_count("GET", "/crm/v3/objects/companies") == 3
    assert hubspot_sim.app.request_count("POST") == 0, "no search request (4/s, 10,000 cap) for a full read"


@pytest.mark.slow
def test_more_than_ten_thousand_records_in_one_window() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, burst_limit=None) as sim:
        with sim.store.lock:
            for i in range(10_050):
                sim.store.create("contacts", {"lastname": f"L{i}"}, at=T0 + timedelta(seconds=i % 600))
        adapter = hubspot_adapter(sim)
        ids = [r["id"] for r in adapter.iter_contacts(T0, T0 + timedelta(hours=1))]
        assert len(ids) == 10_050 == len(set(ids))
        assert sim.app.request_count("POST", "/crm/v3/objects/contacts/search") == 51
        adapter.close()


# -- lookups --------------------------------------------------------------------------------
def test_batch_get_find_and_search(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    company = hubspot_sim.add_company({"name": "Acme s.r.o.", "domain": "acme.cz"}, T0)
    ids = [hubspot_sim.add_contact({"lastname": f"Novák{i}", "email": f"n{i}@acme.cz"}, T0, company_id=company)
           for i in range(150)]
    hubspot_sim.app.reset_log()
    found = hubspot.get_contacts([*ids, "999999", "not-an-id"])
    assert sorted(found) == sorted(ids) and found[ids[0]]["associatedcompanyid"] == company
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/contacts/batch/read") == 2
    assert hubspot.find_contact_by("email", "N7@ACME.CZ")["id"] == ids[7]  # type: ignore[index]
    assert hubspot.find_account_by("domain", "acme.cz")["id"] == company  # type: ignore[index]
    assert hubspot.find_account_by("domain", "nope.cz") is None
    assert [r["id"] for r in hubspot.search_accounts("acme")] == [company]
    assert hubspot.get_account("12345678") is None


# -- activities: batches and 207 ----------------------------------------------------------------
def test_one_batch_create_per_hundred_activities_with_inline_associations(
        hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    company = hubspot_sim.add_company({"name": "Acme"}, T0)
    contact = hubspot_sim.add_contact({"lastname": "Svoboda"}, T0, company_id=company)
    hubspot_sim.app.reset_log()
    records = [_call(f"act{i}", crm_contact_id=contact, direction="in", duration_s=60) for i in range(250)]
    results = hubspot.upsert_activities(KEY, records)
    assert all(isinstance(r, dict) for r in results)
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/calls/batch/create") == 3
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/contacts/batch/read") == 1  # primary company
    assert hubspot_sim.app.request_count("GET", "/crm/v3/properties/calls/daktela_activity_name") == 1
    assert hubspot_sim.app.request_count() == 5
    stored = hubspot_sim.find("calls", KEY, "act7")
    assert stored is not None and stored.properties["hs_call_duration"] == "60000"
    assert hubspot_sim.store.associated("calls", stored.id, "contacts") == [contact]
    assert hubspot_sim.store.associated("calls", stored.id, "companies") == [company]


def test_a_bad_record_fails_alone_in_a_207_answer(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    hubspot_sim.app.reset_log()
    records: list[dict[str, Any]] = [
        _call("good1"), _call("bad", disposition="00000000-0000-0000-0000-000000000000"), _call("good2"),
        _call("no-time", timestamp=None), {KEY: "fbm1", "channel": "fbm", "timestamp": "2026-11-27T10:00:00Z"}]
    results = hubspot.upsert_activities(KEY, records)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert isinstance(results[1], RecordValidationError) and "hs_call_disposition" in str(results[1])
    assert isinstance(results[3], RecordValidationError) and "timestamp" in str(results[3])
    assert isinstance(results[4], NotSupportedError) and "channels.fbm: notes" in str(results[4])
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/calls/batch/create") == 1
    assert hubspot_sim.find("calls", KEY, "bad") is None
    # The same batch through the upsert path (records the ledger knows) isolates it too.
    known = [{**r, "id": "1"} for r in records[:3]]
    again = hubspot.upsert_activities(KEY, known)
    assert isinstance(again[0], dict) and isinstance(again[2], dict) and isinstance(again[1], RecordValidationError)
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/calls/batch/upsert") == 1


def test_late_closed_call_updates_the_same_record(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    [opened] = hubspot.upsert_activities(KEY, [_call("late", status="IN_PROGRESS")])
    assert isinstance(opened, dict)
    [closed] = hubspot.upsert_activities(KEY, [_call("late", status="COMPLETED", duration_s=95,
                                                     disposition="f240bbac-87c9-4f6e-bf70-924b57d47db7",
                                                     id=opened["id"])])
    assert isinstance(closed, dict) and closed["id"] == opened["id"]
    assert closed["status"] == "COMPLETED" and closed["duration_s"] == 95
    assert len([o for o in hubspot_sim.objects("calls") if o.properties.get(KEY) == "late"]) == 1
    # Unknown to us but already in HubSpot (a crash before the ledger write): conflict -> upsert.
    [again] = hubspot.upsert_activities(KEY, [_call("late", status="COMPLETED", title="retried")])
    assert isinstance(again, dict) and again["id"] == opened["id"] and again["title"] == "retried"


def test_channels_hubspot_lacks_can_go_to_notes(hubspot_sim: HubSpotSimHandle) -> None:
    adapter = hubspot_adapter(hubspot_sim, activities={"channels": {"fbm": "notes", "web": "notes"}})
    record = {KEY: "chat1", "channel": "fbm", "timestamp": "2026-11-27T10:00:00.000Z", "title": "Dotaz",
              "body": "Dobrý den"}
    [stored] = adapter.upsert_activities(KEY, [record])
    assert isinstance(stored, dict) and stored["object_type"] == "notes"
    note = hubspot_sim.find("notes", KEY, "chat1")
    assert note is not None and note.properties["hs_note_body"] == "[Messenger] Dotaz\nDobrý den"
    found = adapter.find_activities_by_external_ids(KEY, ["chat1"])["chat1"]
    assert (found["channel"], found["title"], found["body"]) == ("fbm", "Dotaz", "Dobrý den")
    adapter.close()


def test_sms_and_whatsapp_are_communications(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    records = [{KEY: "s1", "channel": "sms", "timestamp": "2026-11-27T10:00:00Z", "body": "Hi"},
               {KEY: "w1", "channel": "wap", "timestamp": "2026-11-27T10:00:00Z", "body": "Ahoj"}]
    assert all(isinstance(r, dict) for r in hubspot.upsert_activities(KEY, records))
    kinds = {o.properties[KEY]: o.properties["hs_communication_channel_type"] for o in hubspot_sim.objects(
        "communications")}
    assert kinds == {"s1": "SMS", "w1": "WHATS_APP"}
    assert {o.properties["hs_communication_logged_from"] for o in hubspot_sim.objects("communications")} == {"CRM"}


# -- linking --------------------------------------------------------------------------------
def test_linking_by_phone_and_email_is_batched_and_never_guesses(
        hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    alice = hubspot_sim.add_contact({"lastname": "Alice", "phone": "+420 777 111 222"}, T0)
    bob = hubspot_sim.add_contact({"lastname": "Bob", "email": "Bob@Example.cz"}, T0)
    hubspot_sim.add_contact({"lastname": "Twin1", "phone": "777 333 444"}, T0)
    hubspot_sim.add_contact({"lastname": "Twin2", "mobilephone": "+420777333444"}, T0)
    others = [hubspot_sim.add_contact({"lastname": f"O{i}", "phone": f"+420 608 000 {i:03d}"}, T0)
              for i in range(60)]
    hubspot_sim.app.reset_log()
    records: list[dict[str, Any]] = [_call("a", phone="+420777111222", direction="in"),
               {KEY: "b", "channel": "email", "timestamp": "2026-11-27T10:00:00Z", "email": "bob@example.cz",
                "direction": "in"},
               _call("twin", phone="+420 777 333 444"),
               _call("nobody", phone="+420 603 999 999"),
               *[_call(f"o{i}", phone=f"608000{i:03d}") for i in range(60)]]
    results = hubspot.upsert_activities(KEY, records)
    assert all(isinstance(r, dict) for r in results)
    searches = hubspot_sim.app.request_count("POST", "/crm/v3/objects/contacts/search")
    assert 1 <= searches <= 4, f"lookups must be batched, got {searches} searches for 63 numbers"
    linked = {r[KEY]: r.get("crm_contact_id") for r in results if isinstance(r, dict)}
    assert linked["a"] == alice and linked["b"] == bob and linked["twin"] is None and linked["nobody"] is None
    assert [linked[f"o{i}"] for i in range(60)] == others
    twin = hubspot_sim.find("calls", KEY, "twin")
    assert twin is not None and hubspot_sim.store.associated("calls", twin.id, "contacts") == []
    usage = hubspot.usage()
    assert usage["activities_unlinked_ambiguous"] == 1 and usage["activities_unmatched"] == 1
    assert usage["activities_linked_by_match"] == 62


# -- quotas, 429, credentials ---------------------------------------------------------------------
def test_daily_quota_exhaustion_stops_writing_and_resumes_next_day() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, burst_limit=None, daily_limit=3) as sim:
        adapter = hubspot_adapter(sim)
        assert adapter.ping()  # 1 request
        first = adapter.upsert_activities(KEY, [_call(f"q{i}") for i in range(150)])  # check + 1 create, then the wall
        written = [r for r in first if isinstance(r, dict)]
        assert len(written) == 100
        assert all(isinstance(r, QuotaExhaustedError) for r in first[100:])
        usage = adapter.usage()
        assert usage["budget_remaining"] == 0 and usage["requests_used"] == 3 and usage["quota_exhausted"] is True
        sent = sim.app.request_count()
        later = adapter.upsert_activities(KEY, [_call("q149")])
        assert isinstance(later[0], QuotaExhaustedError) and sim.app.request_count() == sent, "nothing more is sent"
        adapter.close()
        sim.app.limits.used_today = 0  # the account's midnight
        resumed = hubspot_adapter(sim)
        rest = resumed.upsert_activities(KEY, [_call(f"q{i}") for i in range(100, 150)])
        assert all(isinstance(r, dict) for r in rest)
        names = [str(o.properties[KEY]) for o in sim.objects("calls")]
        assert sorted(names) == sorted(f"q{i}" for i in range(150))
        resumed.close()


def test_a_daily_429_is_quota_exhausted_not_a_crash(hubspot_sim: HubSpotSimHandle,
                                                     hubspot: HubSpotAdapter) -> None:
    hubspot_sim.app.add_fault(SimFault("POST /crm/v3/objects/calls/batch/*", 429, policy="DAILY",
                                       retry_after="3600"))
    [result] = hubspot.upsert_activities(KEY, [_call("d1")])
    assert isinstance(result, QuotaExhaustedError) and result.retry_after_s == 3600


def test_429_with_retry_after_is_honoured(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    hubspot_sim.app.add_fault(SimFault("POST /crm/v3/objects/calls/batch/create", 429, times=1, retry_after="1"))
    started = time.monotonic()
    [result] = hubspot.upsert_activities(KEY, [_call("r1")])
    assert isinstance(result, dict)
    assert time.monotonic() - started >= 1.0
    assert hubspot_sim.app.request_count("POST", "/crm/v3/objects/calls/batch/create") == 2
    assert hubspot.usage()["rate_limited"] == 1 and hubspot.usage()["retries"] == 1


def test_rate_limit_headers_pace_requests_without_429s() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, burst_limit=3, burst_window_s=0.5) as sim:
        adapter = hubspot_adapter(sim)
        for i in range(8):
            assert adapter.get_contact(str(1000 + i)) is None
        statuses = {e.status for e in sim.app.requests()}
        assert 429 not in statuses and statuses == {404}
        adapter.close()


def test_search_is_paced_to_four_per_second() -> None:
    with run_hubspot_simulator(burst_limit=None) as sim:  # HubSpot's 4 search requests/s
        adapter = hubspot_adapter(sim, search_rate_per_s=4.0)
        started = time.monotonic()
        for i in range(9):
            assert adapter.find_contact_by("email", f"x{i}@example.cz") is None
        assert time.monotonic() - started >= 1.9
        assert 429 not in {e.status for e in sim.app.requests()}
        adapter.close()


def test_bad_credentials(hubspot_sim: HubSpotSimHandle) -> None:
    token = "pat-na1-0000-secret-wrong"
    adapter = hubspot_adapter(hubspot_sim, access_token=token)
    assert adapter.ping() is False
    with pytest.raises(AuthError) as refused:
        list(adapter.iter_contacts())
    assert "INVALID_AUTHENTICATION" in str(refused.value) and token not in str(refused.value)
    [slot] = adapter.upsert_activities(KEY, [_call("x")])
    assert isinstance(slot, AuthError)
    assert token not in repr(adapter) and token not in repr(adapter.settings) and token not in repr(adapter.client)
    adapter.close()


def test_missing_scope_is_an_auth_error() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, scopes=frozenset({"crm.objects.contacts.read"})) as sim:
        adapter = hubspot_adapter(sim)
        with pytest.raises(AuthError, match="scope"):
            list(adapter.iter_accounts())
        adapter.close()


def test_server_errors_are_retried_then_reported(hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    hubspot_sim.app.add_fault(SimFault("POST /crm/v3/objects/contacts/search", 502, times=2))
    assert list(hubspot.iter_contacts(T0, None)) == []
    hubspot_sim.app.add_fault(SimFault("GET /crm/v3/objects/contacts", 503, times=None))
    adapter = hubspot_adapter(hubspot_sim, max_retries=1)
    with pytest.raises(Exception, match="HTTP 503"):
        list(adapter.iter_contacts())
    assert hubspot_sim.app.request_count("GET", "/crm/v3/objects/contacts") == 2
    adapter.close()


def test_unique_conflict_on_single_create_is_a_conflict(hubspot: HubSpotAdapter) -> None:
    hubspot.create_activity(_call("dup"))
    with pytest.raises(ConflictError):
        hubspot.create_activity(_call("dup"))


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("settings", "path"), [
    ({}, "crm.access_token"),
    ({"access_token": "  "}, "crm.access_token"),
    ({"access_token": "t", "base_url": "api.hubapi.com"}, "crm.base_url"),
    ({"access_token": "t", "batch_size": 500}, "crm.batch_size"),
    ({"access_token": "t", "activities": {"channels": {"telegram": "notes"}}}, "crm.activities.channels"),
    ({"access_token": "t", "activities": {"channels": {"sms": "tasks"}}}, "crm.activities.channels.sms"),
    ({"access_token": "t", "tokne": "x"}, "crm.tokne"),
])
def test_settings_errors_name_the_key(settings: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        HubSpotSettings.parse(settings)
    assert error.value.path == path


def test_token_never_in_settings_errors_or_reprs() -> None:
    secret = "pat-eu1-very-secret-token"
    settings = HubSpotSettings.parse({"access_token": secret})
    assert secret not in repr(settings) and secret not in str(settings)
    with pytest.raises(ConfigError) as error:
        HubSpotSettings.parse({"access_token": secret, "timeout_s": "soon"})
    assert secret not in str(error.value)


def test_writes_are_refused_without_a_unique_external_id_property() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, bootstrap_external_id=None) as sim:
        adapter = hubspot_adapter(sim)
        [missing] = adapter.upsert_activities(KEY, [_call("u1")])
        assert isinstance(missing, RecordValidationError) and "does not exist" in str(missing)
        sim.store.create_property("calls", {"name": KEY, "type": "string", "hasUniqueValue": False})
        adapter.close()
        adapter = hubspot_adapter(sim)
        [plain] = adapter.upsert_activities(KEY, [_call("u1")])
        assert isinstance(plain, RecordValidationError) and "unique values" in str(plain)
        assert sim.objects("calls") == [], "nothing is written without the unique property"
        adapter.close()


def test_a_whole_batch_refused_for_one_record_is_halved_until_it_stands_alone() -> None:
    with run_hubspot_simulator(search_rate_per_s=None, burst_limit=None, multi_status=False) as sim:
        adapter = hubspot_adapter(sim)
        records = [_call(f"h{i}") for i in range(8)]
        records[5] = _call("h5", disposition="00000000-0000-0000-0000-000000000000")  # not a GUID of this portal
        results = adapter.upsert_activities(KEY, records)
        assert [isinstance(r, dict) for r in results] == [True] * 5 + [False] + [True] * 2
        assert isinstance(results[5], RecordValidationError)
        creates = sim.app.request_count("POST", "/crm/v3/objects/calls/batch/create")
        assert creates == 7, "1 refused batch, then halves: 4 ok + 4 refused, 2 ok + 2 refused, 1 refused + 1 ok"
        again = adapter.upsert_activities(KEY, [{**r, "id": "1"} for r in records])
        assert [isinstance(r, dict) for r in again] == [True] * 5 + [False] + [True] * 2
        adapter.close()


def test_an_activity_of_a_contact_deleted_in_hubspot_is_kept_unlinked(
        hubspot_sim: HubSpotSimHandle, hubspot: HubSpotAdapter) -> None:
    gone = hubspot_sim.add_contact({"lastname": "Gone"}, T0)
    hubspot_sim.store.archive("contacts", gone)
    [stored] = hubspot.upsert_activities(KEY, [_call("orphan", crm_contact_id=gone)])
    assert isinstance(stored, dict) and stored["crm_contact_id"] is None
    call = hubspot_sim.find("calls", KEY, "orphan")
    assert call is not None and hubspot_sim.store.associated("calls", call.id, "contacts") == []
    assert hubspot.usage()["activities_contact_deleted"] == 1


def test_owner_from_the_agent_email_one_lookup_per_agent(hubspot_sim: HubSpotSimHandle,
                                                         hubspot: HubSpotAdapter) -> None:
    hubspot_sim.app.reset_log()
    records = [_call(f"own{i}", agent_email="Jan.Novak@example.cz") for i in range(3)] + [
        _call("own-x", agent_email="nobody@example.cz"), _call("own-set", agent_email="jan.novak@example.cz",
                                                               owner_id="70003")]
    results = hubspot.upsert_activities(KEY, records)
    assert [r["owner_id"] for r in results if isinstance(r, dict)] == ["70001"] * 3 + [None, "70003"]
    assert hubspot_sim.app.request_count("GET", "/crm/v3/owners/") == 2
    assert hubspot.usage()["activities_owner_unknown"] == 1
