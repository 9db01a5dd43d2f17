"""The webhook receiver over real HTTP (uvicorn on a loopback port) with a real inbox file."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks import SECRET_HEADER, Inbox, create_app
from crmsync_pipelines.webhooks.server import BackgroundServer
from crmsync_tests.fixtures.webhooks import SECRET, serve_receiver


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


def _serve(inbox: Inbox, **overrides: object) -> BackgroundServer:
    return serve_receiver(inbox, **{"max_body_bytes": 4096, **overrides})


@pytest.fixture
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    with _serve(inbox) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def _post(client: httpx.Client, body: object, path: str = "/webhooks/daktela", **headers: str) -> httpx.Response:
    return client.post(path, json=body, headers={SECRET_HEADER: SECRET, **headers})


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}])
def test_wrong_or_missing_secret_is_401_and_not_stored(
    client: httpx.Client, inbox: Inbox, headers: dict[str, str]
) -> None:
    response = client.post("/webhooks/daktela", json={"event": "call_close", "name": "c1"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "error": f"invalid or missing {SECRET_HEADER} header"}
    assert SECRET not in response.text
    assert inbox.max_seq() == 0


def test_crm_endpoint_needs_the_secret_too(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post("/webhooks/crm", json={"entity_type": "contact", "entity_id": "7"})
    assert response.status_code == 401
    assert inbox.max_seq() == 0


@pytest.mark.parametrize("secret", ["", "   ", None, "${WEBHOOK_SECRET}", "pre${X}post"])
def test_missing_or_unresolved_secret_refuses_to_start(inbox: Inbox, secret: str | None) -> None:
    with pytest.raises(ConfigError, match=r"webhook\.secret"):
        create_app(inbox=inbox, secret=secret, enabled_entities={"activity"}, activity_types={"call"})


def test_insecure_dev_runs_open_without_a_secret(inbox: Inbox) -> None:
    with _serve(inbox, secret="", insecure_dev=True) as server:
        response = httpx.post(f"{server.url}/webhooks/daktela", json={"event": "call_close", "name": "c1"})
    assert response.status_code == 202
    assert [e.record_id for e in inbox.events()] == ["c1"]


def test_insecure_dev_still_checks_a_configured_secret(inbox: Inbox) -> None:
    with _serve(inbox, insecure_dev=True) as server:
        response = httpx.post(f"{server.url}/webhooks/daktela", json={"event": "call_close", "name": "c1"})
    assert response.status_code == 401


# -- accepted events -------------------------------------------------------------------------


def test_json_call_close_is_stored_before_the_202(client: httpx.Client, inbox: Inbox) -> None:
    body = {"event": "call_close", "name": "activities_abc", "data": {"queue": "100"}}
    response = _post(client, body)
    assert response.status_code == 202
    assert response.json() == {
        "status": "accepted",
        "seq": 1,
        "duplicate": False,
        "entity": "activity",
        "id": "activities_abc",
        "activity_type": "call",
    }
    [event] = inbox.events()
    assert (event.seq, event.source, event.event, event.entity, event.activity_type) == (
        1,
        "daktela",
        "call_close",
        "activity",
        "call",
    )
    assert (event.record_id, event.status, event.body) == ("activities_abc", "pending", body)


def test_form_body_with_nested_keys(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post(
        "/webhooks/daktela",
        content=b"event=email_create&name=mail_1&data%5Bqueue%5D%5Bname%5D=q1&data[tags][]=a&data[tags][]=b",
        headers={SECRET_HEADER: SECRET, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202, response.text
    [event] = inbox.events()
    assert (event.entity, event.activity_type, event.record_id) == ("activity", "email", "mail_1")
    assert event.body == {
        "event": "email_create",
        "name": "mail_1",
        "data": {"queue": {"name": "q1"}, "tags": ["a", "b"]},
    }


def test_body_without_content_type_is_sniffed(client: httpx.Client, inbox: Inbox) -> None:
    for raw in (b'{"event": "sms_close", "name": "s1"}', b"event=sms_close&name=s2"):
        response = client.post("/webhooks/daktela", content=raw, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 202, response.text
    assert [e.record_id for e in inbox.events()] == ["s1", "s2"]


@pytest.mark.parametrize(
    ("body", "expected_id"),
    [({"event": "call_answer", "id": "by-id"}, "by-id"), ({"event": "call_answer", "name": "", "id": 17}, "17")],
)
def test_id_falls_back_to_id_field(
    client: httpx.Client, inbox: Inbox, body: dict[str, object], expected_id: str
) -> None:
    assert _post(client, body).status_code == 202
    assert [e.record_id for e in inbox.events()] == [expected_id]


@pytest.mark.parametrize(
    ("event", "entity", "activity_type"),
    [
        ("call_create", "activity", "call"),
        ("web_close", "activity", "web"),
        ("fbm_update", "activity", "fbm"),
        ("wap_close", "activity", "wap"),
        ("vbr_close", "activity", "vbr"),
        ("CALL_Close", "activity", "call"),
        ("call_transfer_done", "activity", "call"),
        ("contact_update", "contact", None),
        ("account_create", "account", None),
    ],
)
def test_event_prefix_decides_the_entity(
    client: httpx.Client, inbox: Inbox, event: str, entity: str, activity_type: str | None
) -> None:
    assert _post(client, {"event": event, "name": "x1"}).status_code == 202
    [stored] = inbox.events()
    assert (stored.event, stored.entity, stored.activity_type) == (event.lower(), entity, activity_type)


def test_duplicate_delivery_collapses_while_pending(client: httpx.Client, inbox: Inbox) -> None:
    body = {"event": "call_close", "name": "c1", "data": {"a": 1, "b": 2}}
    first = _post(client, body).json()
    # Same payload with keys in another order is the same delivery.
    second = _post(client, {"data": {"b": 2, "a": 1}, "name": "c1", "event": "call_close"}).json()
    assert (first["seq"], first["duplicate"]) == (1, False)
    assert (second["seq"], second["duplicate"]) == (1, True)
    assert inbox.max_seq() == 1
    # Once processed, the same notice again is a new change to sync.
    inbox.mark([1], "processed", run_id="r1")
    third = _post(client, body).json()
    assert (third["seq"], third["duplicate"]) == (2, False)
    # A different body is a different delivery.
    assert _post(client, {**body, "data": {"a": 2}}).json()["duplicate"] is False


def test_crm_webhook(client: httpx.Client, inbox: Inbox) -> None:
    response = _post(client, {"entity_type": "contact", "entity_id": 42}, path="/webhooks/crm")
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    [event] = inbox.events()
    assert (event.source, event.event, event.entity, event.record_id, event.status) == (
        "crm",
        "contact_update",
        "contact",
        "42",
        "pending",
    )


@pytest.mark.parametrize(
    ("path", "body", "event"),
    [
        ("/webhooks/daktela", {"event": "contact_delete", "name": "crm_7"}, "contact_delete"),
        ("/webhooks/daktela", {"event": "account_delete", "name": "crm_acc_7"}, "account_delete"),
        ("/webhooks/daktela", {"event": "call_delete", "name": "c9"}, "call_delete"),
        ("/webhooks/crm", {"entity_type": "account", "entity_id": "7", "event": "delete"}, "account_delete"),
    ],
)
def test_deletes_are_recorded_not_run(
    client: httpx.Client, inbox: Inbox, path: str, body: dict[str, object], event: str
) -> None:
    response = _post(client, body, path=path)
    assert response.status_code == 202
    assert response.json()["status"] == "recorded_delete"
    [stored] = inbox.events()
    assert (stored.event, stored.status) == (event, "recorded_delete")
    assert inbox.pending_after(0) == []
    assert inbox.counts()["recorded_delete"] == 1


def test_disabled_entity_and_unlisted_activity_type_are_recorded_as_ignored(inbox: Inbox) -> None:
    server = _serve(inbox, enabled_entities={"activity"}, activity_types={"call"})
    with server, httpx.Client(base_url=server.url) as http:
        sms = _post(http, {"event": "sms_close", "name": "s1"})
        contact = _post(http, {"event": "contact_update", "name": "crm_1"})
        crm = _post(http, {"entity_type": "account", "entity_id": "5"}, path="/webhooks/crm")
        call = _post(http, {"event": "call_close", "name": "c1"})
    assert [r.status_code for r in (sms, contact, crm, call)] == [202, 202, 202, 202]
    assert sms.json()["status"] == "ignored"
    assert sms.json()["reason"] == "activity type 'sms' is not in activity_types"
    assert contact.json()["reason"] == "entity 'contact' is not enabled in sync.entities"
    assert crm.json()["reason"] == "entity 'account' is not enabled in sync.entities"
    assert call.json()["status"] == "accepted"
    statuses = [(e.record_id, e.status, e.error) for e in inbox.events()]
    assert statuses == [
        ("s1", "ignored", "activity type 'sms' is not in activity_types"),
        ("crm_1", "ignored", "entity 'contact' is not enabled in sync.entities"),
        ("5", "ignored", "entity 'account' is not enabled in sync.entities"),
        ("c1", "pending", None),
    ]
    assert [e.record_id for e in inbox.pending_after(0)] == ["c1"]


# -- rejected events -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "message"),
    [
        (b'{"event": "call_close", "name": ', "application/json", 400, "malformed JSON body"),
        (b"[1, 2]", "application/json", 400, "JSON body must be an object, got list"),
        (b"\xff\xfe", "application/json", 400, "malformed JSON body"),
        (b"just text", "text/plain", 400, "body is neither"),
        (b'{"event": "ticket_close", "name": "t1"}', "application/json", 422, "unknown event prefix 'ticket'"),
        (b'{"event": "call", "name": "c1"}', "application/json", 422, "is not '<prefix>_<action>'"),
        (b'{"event": "call-close", "name": "c1"}', "application/json", 422, "is not '<prefix>_<action>'"),
        (b'{"name": "c1"}', "application/json", 422, "missing 'event'"),
        (b'{"event": "call_close"}', "application/json", 422, "missing record id"),
        (b'{"event": "call_close", "name": "  ", "id": null}', "application/json", 422, "missing record id"),
        (b'{"event": "call_close", "name": ["a"]}', "application/json", 422, "missing record id"),
        (b"event=call_close", "application/x-www-form-urlencoded", 422, "missing record id"),
    ],
)
def test_bad_daktela_payloads_are_refused_and_not_stored(
    client: httpx.Client, inbox: Inbox, raw: bytes, content_type: str, status: int, message: str
) -> None:
    response = client.post(
        "/webhooks/daktela", content=raw, headers={SECRET_HEADER: SECRET, "Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["status"] == "error"
    assert message in response.json()["error"]
    assert inbox.max_seq() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"entity_type": "activity", "entity_id": "1"}, "'entity_type' must be 'contact' or 'account'"),
        ({"entity_id": "1"}, "'entity_type' must be"),
        ({"entity_type": "contact"}, "missing record id"),
        ({"entity_type": "contact", "entity_id": "1", "event": "create"}, "'event' must be one of"),
        ({"entity_type": "contact", "entity_id": "x" * 300}, "longer than 255"),
    ],
)
def test_bad_crm_payloads_are_422(client: httpx.Client, inbox: Inbox, body: dict[str, object], message: str) -> None:
    response = _post(client, body, path="/webhooks/crm")
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert inbox.max_seq() == 0


def test_oversized_body_by_content_length_is_413(client: httpx.Client, inbox: Inbox) -> None:
    body = {"event": "call_close", "name": "c1", "data": {"blob": "x" * 5000}}
    response = _post(client, body)
    assert response.status_code == 413
    assert inbox.max_seq() == 0


def test_oversized_chunked_body_without_content_length_is_413(client: httpx.Client, inbox: Inbox) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"event": "call_close", "name": "c1", "data": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    response = client.post(
        "/webhooks/daktela", content=chunks(), headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert inbox.max_seq() == 0


def test_lying_content_length_is_still_counted(inbox: Inbox) -> None:
    """A client that declares a small Content-Length but keeps sending gets 413, not a 202."""
    with _serve(inbox, max_body_bytes=64) as server:
        payload = json.dumps({"event": "call_close", "name": "c1", "data": "z" * 200}).encode()
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            head = (
                "POST /webhooks/daktela HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"{SECRET_HEADER}: {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
            sock.sendall(head + f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n")
            reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    assert inbox.max_seq() == 0


def test_wrong_method_and_unknown_path(client: httpx.Client) -> None:
    assert client.get("/webhooks/daktela").status_code == 405
    assert client.post("/webhooks/other", headers={SECRET_HEADER: SECRET}).status_code == 404


def test_healthz_reports_pending_events(client: httpx.Client) -> None:
    zero = {"pending": 0, "processed": 0, "failed": 0, "ignored": 0, "recorded_delete": 0, "leased": 0}
    assert client.get("/healthz").json() == {"status": "ok", "inbox": zero}
    _post(client, {"event": "call_close", "name": "c1"})
    _post(client, {"event": "call_close", "name": "c2"})
    _post(client, {"event": "contact_delete", "name": "crm_1"})
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "inbox": {**zero, "pending": 2, "recorded_delete": 1}}


def test_inbox_write_failure_is_503_not_202(tmp_path: Path) -> None:
    box = Inbox(tmp_path / "inbox.sqlite")
    with _serve(box) as server:
        box.close()  # the file is unusable from now on: nothing can be stored
        response = httpx.post(
            f"{server.url}/webhooks/daktela",
            json={"event": "call_close", "name": "c1"},
            headers={SECRET_HEADER: SECRET},
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert Inbox(tmp_path / "inbox.sqlite").max_seq() == 0


def test_secrets_never_reach_the_logs(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    client.post("/webhooks/daktela", json={"event": "call_close", "name": "c1"}, headers={SECRET_HEADER: "guess-1"})
    _post(client, {"event": "call_close", "name": "c2"})
    _post(client, {"event": "nope_close", "name": "c3"})
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("crmsync")]
    assert any("refused" in m for m in messages)
    assert any("call_close for activity c2" in m for m in messages)
    assert all(SECRET not in m and "guess-1" not in m for m in messages)
