"""``crmsync staging query``: read-only SQL on a real staging file, with the bundled duckdb."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.staging import StagingStore


def _staging(tmp_path: Path) -> Path:
    path = tmp_path / "crmsync.duckdb"
    store = StagingStore(path)
    with store.connect() as con:
        con.execute("INSERT INTO key_map (entity, source_id, lookup_key, updated_at) VALUES "
                    "('contact', '1', 'crm_1', now()), ('contact', '2', 'crm_2', now()), "
                    "('account', '9', 'acc_9', now())")
    return path


def _query(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["staging", "query", *args])
    return result.exit_code, result.output


def test_query_prints_an_aligned_table(tmp_path: Path) -> None:
    db = _staging(tmp_path)
    code, out = _query("--db", str(db), "select entity, count(*) as n from key_map group by all order by all")
    assert code == 0, out
    assert out.splitlines() == ["entity   n", "-------  -", "account  1", "contact  2"]


def test_limit_and_empty_results(tmp_path: Path) -> None:
    db = _staging(tmp_path)
    code, out = _query("--db", str(db), "--limit", "1", "select source_id from key_map order by 1")
    assert code == 0 and out.splitlines()[2] == "1" and "more rows not shown (--limit 1)" in out
    code, out = _query("--db", str(db), "select * from ledger")
    assert code == 0 and out.splitlines()[-1] == "(no rows)"


def test_writes_and_bad_sql_are_refused_without_a_traceback(tmp_path: Path) -> None:
    db = _staging(tmp_path)
    code, out = _query("--db", str(db), "delete from key_map")
    assert code == 1 and "read-only" in out and "Traceback" not in out
    code, out = _query("--db", str(db), "selec 1")
    assert code == 1 and out.startswith("Error: query failed: Parser Error")
    code, out = _query("--db", str(db), "select count(*) as n from key_map")
    assert out.splitlines()[-1] == "3", "the refused delete changed nothing"


def test_a_missing_staging_file_says_run_a_sync_first(tmp_path: Path) -> None:
    code, out = _query("--db", str(tmp_path / "none.duckdb"), "select 1")
    assert code == 1 and "no staging file" in out and "make demo" in out
