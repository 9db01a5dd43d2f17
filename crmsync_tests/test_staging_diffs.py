"""The ``diffs`` table keeps one decision per (batch, entity, source id)."""

from __future__ import annotations

from pathlib import Path

from crmsync_pipelines.staging import StagingStore


def test_an_auto_contact_decision_does_not_replace_its_accounts(tmp_path: Path) -> None:
    # An account and the contact auto-created from it share the CRM id within one batch.
    store = StagingStore(tmp_path / "staging.duckdb")
    store.save_diffs("batch-1", "run-1", "account", [("42", "crm_42", "update", ["title"])])
    store.save_diffs("batch-1", "run-1", "auto_contact", [("42", "crm_42", "create", [])])
    store.save_diffs("batch-1", "run-1", "account", [("42", "crm_42", "update", ["title", "city"])])
    with store.connect() as con:
        rows = con.execute(
            "SELECT entity, action, changed_fields::VARCHAR FROM diffs WHERE batch_id = 'batch-1' ORDER BY entity"
        ).fetchall()
    assert rows == [("account", "update", '["title","city"]'), ("auto_contact", "create", "[]")]
