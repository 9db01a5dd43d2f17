"""Issue 9 end to end: refused values fail visibly and are counted, custom fields land as lists,
activity times use the Daktela instance's zone. Real simulator over HTTP, real SQLite CRM, real DuckDB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from crmsync_pipelines.config import load_config
from crmsync_pipelines.crm.demo_data import create_demo_crm
from crmsync_pipelines.defs.metadata import report_metadata, row_count
from crmsync_pipelines.engine import SyncEngine, Window
from crmsync_pipelines.engine.reports import StageReport
from crmsync_pipelines.simulator import SimulatorHandle, run_simulator
from crmsync_tests.fixtures.engine import MAPPINGS, EngineEnv
from crmsync_tests.test_engine_quality import _mapping_variant

ALL = Window(None, None)


def _set_phones(env: EngineEnv, phones: list[str]) -> list[str]:
    with sqlite3.connect(env.crm_path) as con:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM contacts ORDER BY id LIMIT ?", [len(phones)])]
        con.executemany("UPDATE contacts SET phone = ? WHERE id = ?", list(zip(phones, ids, strict=True)))
    return ids


def _contact_count(env: EngineEnv) -> int:
    with sqlite3.connect(env.crm_path) as con:
        return int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])


# -- refused phone numbers ----------------------------------------------------------------------


def test_unreadable_phones_fail_their_records_visibly_and_are_counted(engine_env: EngineEnv) -> None:
    ids = _set_phones(engine_env, ["0737 123 456", "12", "0905 123 456", "+420 602 345 678 ext. 12"])
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    _extract, mapped, load = engine.sync("contact", ALL, "run-1")

    assert mapped.counts["invalid"] == 2 and mapped.counts["refused_values"] == 2
    assert "refused_values 2" in mapped.summary_line()
    assert load.counts["failed"] == 2 and load.counts["created"] == _contact_count(engine_env) - 2
    dead = {d["source_id"]: d for d in engine.staging.failed_records("contact")}
    assert set(dead) == {ids[0], ids[1]}
    assert {d["error_class"] for d in dead.values()} == {"validation"}
    assert dead[ids[0]]["error_message"].startswith("[refused_value] ")
    assert dead[ids[0]]["error_message"].endswith(  # the example in docs/mappings.md
        "contacts.yaml: mappings[6] (phone -> customFields.number): transformer phone_normalize: "
        "'0737 123 456' is not a valid phone number in CZ or SK"
    )
    assert "'12' is not a valid phone number in CZ or SK" in dead[ids[1]]["error_message"]
    # nothing manufactured reached Daktela; the readable ones are right
    assert engine_env.sim.get("contacts", f"crm_{ids[0]}") is None
    assert engine_env.sim.get("contacts", f"crm_{ids[2]}")["customFields"]["number"] == ["+421905123456"]  # type: ignore[index]
    assert engine_env.sim.get("contacts", f"crm_{ids[3]}")["customFields"]["number"] == ["+420602345678"]  # type: ignore[index]


def test_on_invalid_drop_syncs_the_record_without_the_number_and_counts_it(
    engine_env: EngineEnv, caplog: pytest.LogCaptureFixture
) -> None:
    dropping = _mapping_variant(engine_env, "on_invalid: fail", "on_invalid: drop")
    ids = _set_phones(engine_env, ["0737 123 456", "603 123 456, 604 567 890"])
    engine = engine_env.engine(contact_mapping=dropping)
    engine.sync("account", ALL, "run-1")
    _extract, mapped, load = engine.sync("contact", ALL, "run-1")
    assert mapped.counts["refused_values"] == 1 and mapped.counts["invalid"] == 0
    warnings = [r.getMessage() for r in caplog.records if "refused value" in r.getMessage()]
    assert warnings == [
        "contact: 1 refused value(s): 0 failed their record, 0 written unchanged (on_invalid: keep), "
        f"1 left out (on_invalid: drop); e.g. {ids[0]} customFields.number: "
        "'0737 123 456' is not a valid phone number in CZ or SK (drop)"
    ]
    assert load.counts["created"] == _contact_count(engine_env)
    assert engine.staging.failed_records("contact") == []
    assert engine_env.sim.get("contacts", f"crm_{ids[0]}")["customFields"]["number"] == []  # type: ignore[index]
    assert engine_env.sim.get("contacts", f"crm_{ids[1]}")["customFields"]["number"] == [  # type: ignore[index]
        "+420603123456",
        "+420604567890",
    ]


def test_refused_values_reach_dagster_metadata_without_inflating_the_row_count() -> None:
    report = StageReport("contact", "map", "run-1", ALL, counts={"mapped": 8, "invalid": 2, "refused_values": 3})
    metadata = report_metadata(report)
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    assert values["refused_values"] == 3
    assert values["records_mapped"] == 8 and values["records_invalid"] == 2
    assert "records_refused_values" not in values
    assert values["dagster/row_count"] == row_count(report) == 10


# -- custom fields are lists on write -------------------------------------------------------------


def test_a_scalar_custom_field_is_written_as_a_list(engine_env: EngineEnv) -> None:
    no_wrap = _mapping_variant(
        engine_env,
        "      - {name: string_case, params: {case: lower}}\n      - {name: wrap_array}\n",
        "      - {name: string_case, params: {case: lower}}\n",
    )
    engine = engine_env.engine(contact_mapping=no_wrap)
    engine.sync("account", ALL, "run-1")
    load = engine.sync("contact", ALL, "run-1")[-1]
    assert load.counts == {"created": _contact_count(engine_env)}
    with sqlite3.connect(engine_env.crm_path) as con:
        crm_id, email = con.execute("SELECT id, email FROM contacts WHERE email <> '' LIMIT 1").fetchone()
    stored = engine_env.sim.get("contacts", f"crm_{crm_id}")
    assert stored is not None and stored["customFields"]["email"] == [email.lower()]


@pytest.mark.parametrize(("locale", "message"), [("en", "Value must be an array"), ("cs", "Hodnota musí být pole")])
def test_the_simulator_refuses_a_scalar_custom_field_like_daktela(locale: str, message: str) -> None:
    with (
        run_simulator(seed=None, locale=locale) as sim,
        httpx.Client(base_url=sim.api_url, headers={"X-AUTH-TOKEN": sim.token}, timeout=10) as client,
    ):
        body = {"title": "Jana", "lastname": "Nová", "database": "default"}
        bad = client.post("/contacts.json", json={**body, "customFields": {"number": "+420603123456", "email": []}})
        assert bad.status_code == 400
        assert bad.json()["error"] == {"form": {"customFields": {"number": [message]}}}
        assert sim.count("contacts") == 0
        good = client.post(
            "/contacts.json", json={**body, "name": "c1", "customFields": {"number": ["+420603123456"], "email": None}}
        )
        assert good.status_code == 201
        assert good.json()["result"]["customFields"]["number"] == ["+420603123456"]
        put = client.put("/contacts/c1.json", json={"customFields": {"email": "a@b.cz"}})
        assert put.status_code == 400
        assert put.json()["error"] == {"form": {"customFields": {"email": [message]}}}
        assert sim.get("contacts", "c1")["customFields"]["number"] == ["+420603123456"]  # type: ignore[index]


# -- activity times in the instance's zone ------------------------------------------------------


@pytest.fixture
def new_york_simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(seed="demo", timezone="America/New_York") as handle:
        yield handle


def _activity_engine(tmp_path: Path, sim: SimulatorHandle, monkeypatch: pytest.MonkeyPatch, zone: str) -> SyncEngine:
    crm_path = tmp_path / "crm.sqlite"
    create_demo_crm(crm_path, accounts=2, contacts=5, seed=7)
    monkeypatch.setenv("DAKTELA_INSTANCE_URL", sim.base_url)
    monkeypatch.setenv("DAKTELA_ACCESS_TOKEN", sim.token)
    monkeypatch.setenv("DAKTELA_TIMEZONE", "Europe/Prague")  # what the old mapping read: must not matter
    env = EngineEnv(sim=sim, crm_path=crm_path, tmp=tmp_path)
    path = env.write_config(accounts=False, contacts=False, activities=True)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  database: default\n", f"  database: default\n  timezone: {zone}\n"), "utf-8")
    return SyncEngine.from_config(load_config(path))


@pytest.mark.parametrize("configured", ["America/New_York", "Europe/Prague"])
def test_activity_times_land_in_utc_from_the_instance_zone(
    tmp_path: Path, new_york_simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    """``daktela.timezone: America/New_York``, or a wrong setting corrected by the API's ``_timezone``."""
    engine = _activity_engine(tmp_path, new_york_simulator, monkeypatch, configured)
    load = engine.sync("activity", ALL, "run-1")[-1]
    daktela = {a["name"]: a for a in new_york_simulator.all("activities")}
    assert load.counts == {"created": len(daktela)}
    with sqlite3.connect(tmp_path / "crm.sqlite") as con:
        stored = dict(con.execute("SELECT external_id, started_at FROM activities").fetchall())
    zone = ZoneInfo("America/New_York")
    for name, activity in daktela.items():
        local = datetime.strptime(activity["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
        assert datetime.fromisoformat(stored[name]) == local, name
        assert stored[name].endswith("+00:00")


# -- a refused value in a related or derived record fails those records, never the run ---------


def test_contacts_of_an_account_with_a_refused_phone_fail_naming_why(engine_env: EngineEnv) -> None:
    with sqlite3.connect(engine_env.crm_path) as con:
        account = str(con.execute("SELECT account_id FROM contacts WHERE account_id IS NOT NULL").fetchone()[0])
        con.execute("UPDATE accounts SET phone = '12' WHERE id = ?", [account])
        members = {str(r[0]) for r in con.execute("SELECT id FROM contacts WHERE account_id = ?", [account])}
    engine = engine_env.engine()
    accounts = engine.sync("account", ALL, "run-1")
    assert accounts[1].counts["refused_values"] == 1 and accounts[-1].counts["failed"] == 1
    load = engine.sync("contact", ALL, "run-1")[-1]
    assert load.counts["failed"] == len(members)
    assert load.counts["created"] == _contact_count(engine_env) - len(members)
    dead = {d["source_id"]: d["error_message"] for d in engine.staging.failed_records("contact")}
    assert set(dead) == members
    assert all(
        message.startswith(f"[relation] account_id='{account}': the account cannot be mapped: ")
        and "'12' is not a valid phone number in CZ or SK" in message
        for message in dead.values()
    )


def test_an_auto_contact_with_a_refused_phone_fails_alone(engine_env: EngineEnv) -> None:
    text = (MAPPINGS / "account-contact.yaml").read_text(encoding="utf-8")
    variant = engine_env.tmp / "account-contact-variant.yaml"
    variant.write_text(text.replace("    crm_field: phone\n", "    crm_field: reg_number\n"), encoding="utf-8")
    config = engine_env.write_config(contacts=False, auto_contact=True)
    config.write_text(
        config.read_text(encoding="utf-8").replace(str(MAPPINGS / "account-contact.yaml"), str(variant)), "utf-8"
    )
    engine = SyncEngine.from_config(load_config(config))
    load = engine.sync("account", ALL, "run-1")[-1]
    with sqlite3.connect(engine_env.crm_path) as con:
        accounts = int(con.execute("SELECT count(*) FROM accounts").fetchone()[0])
    assert load.counts["created"] == accounts  # the accounts themselves are fine
    assert load.counts["auto_contact_failed"] == accounts  # an IČO is no phone number
    assert engine_env.sim.count("contacts") == 0


# -- second review: typography and odd spellings end to end ---------------------------------------


def test_phones_written_with_unicode_typography_reach_daktela_right(engine_env: EngineEnv) -> None:
    phones = [
        "603\u202f123\u202f456",  # narrow no-break spaces (a French or Word locale)
        "+421\u00a0905\u2009123\u2009456",  # no-break + thin spaces
        "604\u2212567\u2212890",  # minus signs as dashes
        "\u202a+420 605 123 456\u202c",  # bidi embedding marks around the number
        "0033 6 12 34 56 78",  # 00 + a country code
    ]
    ids = _set_phones(engine_env, phones)
    engine = engine_env.engine()
    engine.sync("account", ALL, "run-1")
    _extract, mapped, load = engine.sync("contact", ALL, "run-1")
    assert mapped.counts.get("invalid", 0) == 0 and load.counts.get("failed", 0) == 0, (mapped.counts, load.counts)
    assert engine.staging.failed_records("contact") == []
    expected = ["+420603123456", "+421905123456", "+420604567890", "+420605123456", "+33612345678"]
    for record_id, number in zip(ids, expected, strict=True):
        assert engine_env.sim.get("contacts", f"crm_{record_id}")["customFields"]["number"] == [number]  # type: ignore[index]
