"""Text that came from outside (webhook payloads, CRM records, CRM error messages) is shown by
the CLI as one inert table cell: a newline cannot break a row into two, and a terminal escape
sequence (``ESC [ 2 J`` clears the screen) is printed escaped, never executed.

``crmsync inbox list`` over a real SQLite inbox; ``render_table`` is the one renderer every
CLI table (sync summary, inbox, staging query, demo) goes through.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from crmsync_pipelines.cli.common import printable, render_table
from crmsync_pipelines.cli.main import cli
from crmsync_pipelines.webhooks.inbox import Inbox

HOSTILE_ID = "activities_x\nseq 99  forged row\x1b[2J\x1b]0;pwned\x07\u2028end"


def test_printable_escapes_control_characters_and_keeps_unicode() -> None:
    assert printable("a\nb\tc\x1b[31m\x00\u2028\u2029") == "a\\nb\\tc\\x1b[31m\\x00\\u2028\\u2029"
    assert printable("Příliš žluťoučký kůň 🐴 — ok") == "Příliš žluťoučký kůň 🐴 — ok"
    assert printable(None) == "None"
    table = render_table([{"id": "1\n2", "name": "Ž\x1b[0m"}], ("id", "name"))
    assert table.splitlines()[2] == "1\\n2  Ž\\x1b[0m"
    assert len(table.splitlines()) == 3


def test_inbox_list_shows_a_hostile_record_id_on_one_inert_line(tmp_path: Path) -> None:
    inbox_path = tmp_path / "inbox.sqlite"
    config = tmp_path / "sync.yaml"
    config.write_text(f"webhook:\n  inbox_path: {inbox_path}\n", encoding="utf-8")
    box = Inbox(inbox_path)
    seq, _ = box.add(source="daktela", event="activity_close\r\nx", entity="activity", activity_type="call",
                     record_id=HOSTILE_ID, body={"name": HOSTILE_ID})
    box.mark([seq], "failed", run_id="run-1", error="not found at the source: activity '\x1b[2J'")
    box.close()
    result = CliRunner().invoke(cli, ["inbox", "list", "-c", str(config), "--status", "failed"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u2028" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 4  # the counts line, the header, the rule, one event
    assert lines[3].startswith(f"{seq}  ") and "activities_x\\nseq 99  forged row\\x1b[2J" in lines[3]
