"""The demo CRM generator and mutator: deterministic, realistic, imperfect on purpose."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.crm.demo_data import DemoCrmStats, create_demo_crm, mutate_demo_crm
from crmsync_pipelines.crm.sql import SqlCrmAdapter
from crmsync_pipelines.crm.sql_settings import SqlCrmSettings
from crmsync_tests.fixtures.crm import DEMO_NOW


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _generate(tmp_path: Path, name: str, **kwargs: object) -> DemoCrmStats:
    options: dict[str, object] = {"accounts": 40, "contacts": 600, "seed": 7, "now": DEMO_NOW, **kwargs}
    return create_demo_crm(tmp_path / name, **options)  # type: ignore[arg-type]


def test_same_seed_and_now_give_identical_data(tmp_path: Path) -> None:
    a = _generate(tmp_path, "a.sqlite")
    b = _generate(tmp_path, "b.sqlite")
    c = _generate(tmp_path, "c.sqlite", seed=8)
    dump = "SELECT * FROM contacts ORDER BY id"
    assert _rows(a.path, dump) == _rows(b.path, dump)
    assert _rows(a.path, dump) != _rows(c.path, dump)
    assert a.contacts_without_account == b.contacts_without_account


def test_data_is_realistic_and_dirty(tmp_path: Path) -> None:
    stats = _generate(tmp_path, "demo.sqlite")
    contacts = _rows(
        stats.path, "SELECT first_name, last_name, email, phone, account_id, tags, updated_at FROM contacts"
    )
    accounts = _rows(stats.path, "SELECT name, reg_number, website FROM accounts")
    assert len(contacts) == 600 and len(accounts) == 40

    names = " ".join(f"{c[0]} {c[1]}" for c in contacts)
    assert re.search(r"[ěščřžýáíéůúňťďĚŠČŘŽ]", names), "Czech diacritics in names"
    assert re.search(r"[ľĽôä]|ová\b", names), "Slovak names / female surnames"
    assert any(str(c[0]).endswith(" ") or str(c[1]).endswith(" ") for c in contacts), "trailing spaces"

    emails = [c[2] for c in contacts]
    assert any(e == "" for e in emails) and any(e is None for e in emails), "empty and missing e-mails"
    assert any(e and e.isupper() for e in emails), "upper-case e-mails"
    assert all(e is None or e.isascii() for e in emails), "e-mails are ASCII-folded"

    phones = [str(c[3]) for c in contacts if c[3]]
    formats = {
        "intl_spaced": r"^\+420 \d{3} \d{3} \d{3}$",
        "double_zero": r"^00420\d{9}$",
        "national": r"^\d{9}$",
        "dashed": r"^\d{3}-\d{3}-\d{3}$",
        "slovak": r"^(\+421|00421|0)\s?9\d\d",
    }
    for label, pattern in formats.items():
        assert any(re.match(pattern, p) for p in phones), f"phone format {label} present"

    without_account = sum(1 for c in contacts if c[4] is None)
    assert without_account == stats.contacts_without_account
    assert 0.05 <= without_account / len(contacts) <= 0.16, "about 10% of contacts have no account"
    assert any("," in str(c[5]) for c in contacts), "multi-value tags"

    legal_forms = {"s.r.o.", "a.s.", "spol. s r.o."}
    assert {f for f in legal_forms if any(str(a[0]).strip().endswith(f) for a in accounts)} == legal_forms
    assert all(a[1] is None or re.fullmatch(r"\d{8}", str(a[1])) for a in accounts)

    duplicates = _rows(
        stats.path, "SELECT email, count(*) FROM contacts WHERE email > '' GROUP BY email HAVING count(*) > 1"
    )
    assert duplicates, "a few duplicate contacts"


def test_modified_times_cover_thirty_days_and_today(tmp_path: Path) -> None:
    stats = _generate(tmp_path, "demo.sqlite")
    adapter = SqlCrmAdapter(SqlCrmSettings(path=str(stats.path)))
    # "Today" is the Daktela instance's local day (the partition the pipeline syncs), not the UTC day.
    today = DEMO_NOW.astimezone(ZoneInfo("Europe/Prague")).replace(hour=0, minute=0, second=0)
    in_today = list(adapter.iter_contacts(today, today + timedelta(days=1)))
    assert len(in_today) == stats.contacts_modified_today
    assert 0.15 * 600 <= len(in_today) <= 0.35 * 600
    assert all(r["updated_at"] <= DEMO_NOW.isoformat() for r in in_today), "nothing after now"
    older = list(adapter.iter_contacts(today - timedelta(days=30), today))
    assert len(older) + len(in_today) == 600, "everything within the last 30 days"
    assert list(adapter.iter_contacts(DEMO_NOW + timedelta(seconds=1), None)) == []
    adapter.close()


def test_existing_file_is_not_overwritten_by_accident(tmp_path: Path) -> None:
    stats = _generate(tmp_path, "demo.sqlite", contacts=10)
    with pytest.raises(FileExistsError, match="already exists"):
        _generate(tmp_path, "demo.sqlite")
    assert _rows(stats.path, "SELECT count(*) FROM contacts") == [(10,)]
    replaced = _generate(tmp_path, "demo.sqlite", contacts=20, overwrite=True)
    assert _rows(replaced.path, "SELECT count(*) FROM contacts") == [(20,)]
    with pytest.raises(ValueError):
        _generate(tmp_path, "neg.sqlite", contacts=-1)


def test_mutate_touches_adds_and_deletes(tmp_path: Path) -> None:
    stats = _generate(tmp_path, "demo.sqlite", contacts=200)
    later = DEMO_NOW + timedelta(hours=2)
    before = dict(_rows(stats.path, "SELECT id, phone || '|' || ifnull(job_title, '') FROM contacts"))
    result = mutate_demo_crm(stats.path, touch_pct=10, add=5, delete=3, seed=1, now=later)
    assert (result.accounts_touched, result.contacts_touched, result.contacts_added, result.contacts_deleted) == (
        4,
        20,
        5,
        3,
    )
    adapter = SqlCrmAdapter(SqlCrmSettings(path=str(stats.path)))
    changed = list(adapter.iter_contacts(later, None))
    assert len(changed) == 25 and all(r["updated_at"] == later.isoformat() for r in changed)
    assert sum(1 for r in changed if int(r["id"]) > 200) == 5
    assert len(list(adapter.iter_contacts())) == 202
    assert len(list(adapter.iter_accounts(later, None))) == 4
    touched = [r for r in changed if int(r["id"]) <= 200]
    assert any(f"{r['phone']}|{r['job_title'] or ''}" != before[int(r["id"])] for r in touched)
    adapter.close()


def test_mutate_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mutate_demo_crm(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    stats = _generate(tmp_path, "demo.sqlite", contacts=10)
    with pytest.raises(ValueError):
        mutate_demo_crm(stats.path, touch_pct=150)
    with pytest.raises(ValueError):
        mutate_demo_crm(stats.path, add=-1)


def test_demo_crm_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "cli.sqlite"
    created = runner.invoke(
        cli,
        [
            "demo-crm",
            "create",
            "--path",
            str(path),
            "--accounts",
            "5",
            "--contacts",
            "30",
            "--seed",
            "3",
            "--now",
            "2026-11-27T10:00:00+00:00",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "5 accounts, 30 contacts" in created.output
    again = runner.invoke(cli, ["demo-crm", "create", "--path", str(path)])
    assert again.exit_code == 1 and "already exists" in again.output
    mutated = runner.invoke(
        cli,
        ["demo-crm", "mutate", "--path", str(path), "--touch-pct", "10", "--add", "2", "--delete", "1", "--seed", "1"],
    )
    assert mutated.exit_code == 0, mutated.output
    assert "3 contacts changed, 2 contacts added, 1 deleted" in mutated.output
    assert _rows(path, "SELECT count(*) FROM contacts") == [(31,)]
    bad_now = runner.invoke(cli, ["demo-crm", "create", "--path", str(tmp_path / "x.sqlite"), "--now", "2026-11-27"])
    assert bad_now.exit_code == 2 and "time zone" in bad_now.output
    missing = runner.invoke(cli, ["demo-crm", "mutate", "--path", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
