"""Hostile and malformed webhook bodies over real HTTP (uvicorn on a loopback port), issue 11.

Each body the receiver used to answer with 500 (RecursionError, ValueError, UnicodeEncodeError)
or to parse for 97 s on the event loop is answered with a 4xx and its reason, and nothing
refused is stored.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.webhooks import SECRET_HEADER, Inbox, create_app
from crmsync_pipelines.webhooks.limits import BodyLimits
from crmsync_tests.fixtures.webhooks import SECRET, serve_receiver

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


@pytest.fixture
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    with serve_receiver(inbox) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _post_raw(client: httpx.Client, raw: bytes, content_type: str | None, **headers: str) -> httpx.Response:
    sent = {SECRET_HEADER: SECRET, **headers}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post("/webhooks/daktela", content=raw, headers=sent)


def _refused(response: httpx.Response, status: int, message: str, inbox: Inbox) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"status": "error", "error": message}
    assert inbox.max_seq() == 0


# -- nesting -------------------------------------------------------------------------------------


def test_form_nested_1500_levels_is_400_not_500(client: httpx.Client, inbox: Inbox) -> None:
    raw = b"event=call_close&name=c1&a" + b"[b]" * 1500 + b"=1"
    _refused(_post_raw(client, raw, FORM), 400, "form body: form key nested deeper than 32 levels", inbox)


def test_form_nested_1500_levels_percent_encoded_without_content_type(client: httpx.Client, inbox: Inbox) -> None:
    raw = b"event=call_close&name=c1&a" + b"%5Bb%5D" * 1500 + b"=1"
    _refused(_post_raw(client, raw, None), 400, "form body: form key nested deeper than 32 levels", inbox)


@pytest.mark.parametrize("depth", [1000, 5000])
def test_json_nested_deeply_is_400_not_500(client: httpx.Client, inbox: Inbox, depth: int) -> None:
    raw = b'{"event": "call_close", "name": "c1", "data": ' + b"[" * depth + b"]" * depth + b"}"
    _refused(_post_raw(client, raw, JSON), 400, "body nested deeper than 32 levels", inbox)


def test_json_nested_past_the_limit_but_parseable_is_400(client: httpx.Client, inbox: Inbox) -> None:
    # 40 levels parse fine in Python; the limit (32) still refuses them.
    raw = b'{"event": "call_close", "name": "c1", "data": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"
    _refused(_post_raw(client, raw, JSON), 400, "body nested deeper than 32 levels", inbox)


def test_nesting_at_the_limit_is_accepted(client: httpx.Client, inbox: Inbox) -> None:
    # The top object is level 1, so data holds 31 more levels.
    data: object = "x"
    for _ in range(31):
        data = {"a": data}
    response = client.post(
        "/webhooks/daktela", json={"event": "call_close", "name": "c1", "data": data}, headers={SECRET_HEADER: SECRET}
    )
    assert response.status_code == 202, response.text
    form = b"event=call_close&name=c2&d" + b"[a]" * 31 + b"=x"
    assert _post_raw(client, form, FORM).status_code == 202
    [first, second] = inbox.events()
    assert first.body == {"event": "call_close", "name": "c1", "data": data}
    assert second.body["d"] == data


# -- values that are not Unicode or not numbers we can read --------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event": "call_close", "name": "x\\ud800y"}',
        b'{"event": "call_close", "name": "c1", "data": {"note": "\\udfff"}}',
        b'{"event": "call_close", "name": "c1", "data": {"k\\ud83d": 1}}',
    ],
)
def test_lone_surrogate_is_400_not_500(client: httpx.Client, inbox: Inbox, raw: bytes) -> None:
    response = _post_raw(client, raw, JSON)
    assert response.status_code == 400, response.text
    assert "lone UTF-16 surrogate" in response.json()["error"]
    assert "RFC 8259 §8.2" in response.json()["error"]
    assert inbox.max_seq() == 0


def test_a_surrogate_pair_is_a_real_character_and_accepted(client: httpx.Client, inbox: Inbox) -> None:
    response = _post_raw(client, b'{"event": "call_close", "name": "c\\ud83d\\ude00"}', JSON)
    assert response.status_code == 202, response.text
    assert [e.record_id for e in inbox.events()] == ["c\U0001f600"]


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        (b"1" * 5000, "a number in the body is longer than 100 characters"),
        (b"-" + b"9" * 101, "a number in the body is longer than 100 characters"),
        (b"1." + b"5" * 200, "a number in the body is longer than 100 characters"),
        (b"NaN", "NaN is not a JSON value (RFC 8259 §6)"),
        (b"Infinity", "Infinity is not a JSON value (RFC 8259 §6)"),
        (b"-Infinity", "-Infinity is not a JSON value (RFC 8259 §6)"),
    ],
)
def test_unreadable_numbers_are_400_not_500(client: httpx.Client, inbox: Inbox, literal: bytes, message: str) -> None:
    raw = b'{"event": "call_close", "name": ' + literal + b"}"
    _refused(_post_raw(client, raw, JSON), 400, message, inbox)


def test_number_beyond_a_double_is_400_not_infinity(client: httpx.Client, inbox: Inbox) -> None:
    raw = b'{"event": "call_close", "name": "c1", "data": {"x": 1e400}}'
    _refused(_post_raw(client, raw, JSON), 400, "a number in the body is out of the range of a double (RFC 8259 §6)",
             inbox)


@pytest.mark.parametrize("content_type", [FORM, None])
def test_percent_encoded_bytes_that_are_not_utf8_are_400_not_replaced(
    client: httpx.Client, inbox: Inbox, content_type: str | None
) -> None:
    """Decoding %FF as U+FFFD would store a record id the sender never sent."""
    response = _post_raw(client, b"event=call_close&name=c%FF1", content_type)
    _refused(response, 400, "form body: a percent-encoded value is not valid UTF-8", inbox)
    assert _post_raw(client, b"event=call_close&name=%C5%BEc1", content_type).status_code == 202
    assert [e.record_id for e in inbox.events()] == ["žc1"]


def test_integer_name_of_100_digits_is_an_id(client: httpx.Client, inbox: Inbox) -> None:
    assert _post_raw(client, b'{"event": "call_close", "name": ' + b"7" * 100 + b"}", JSON).status_code == 202
    assert [e.record_id for e in inbox.events()] == ["7" * 100]


# -- key counts and string lengths ---------------------------------------------------------------


def test_40000_form_keys_are_413_at_once(client: httpx.Client, inbox: Inbox) -> None:
    raw = b"event=call_close&name=c1&" + b"&".join([b"a[]=1"] * 40_000)
    assert len(raw) < 262_144  # under the byte limit: the key cap refuses it (parsing took 97 s before)
    _refused(_post_raw(client, raw, FORM), 413, "form body: more than 1000 form fields (40002)", inbox)


def test_key_count_counts_nested_keys_and_list_items(client: httpx.Client, inbox: Inbox) -> None:
    # event + name + data = 3 keys, so 997 list items reach the limit of 1000 exactly.
    at_limit = {"event": "call_close", "name": "c1", "data": list(range(997))}
    response = client.post("/webhooks/daktela", json=at_limit, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 202, response.text
    over = {"event": "call_close", "name": "c2", "data": {"x": list(range(997))}}
    response = client.post("/webhooks/daktela", json=over, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 413
    assert response.json()["error"] == "body has more than 1000 keys and list items"
    assert inbox.max_seq() == 1


def test_form_keys_at_the_limit_are_accepted(client: httpx.Client, inbox: Inbox) -> None:
    raw = b"event=call_close&name=c1&" + b"&".join([b"t[]=1"] * 997)
    assert _post_raw(client, raw, FORM).status_code == 202
    [event] = inbox.events()
    assert event.body["t"] == ["1"] * 997


def test_string_longer_than_the_limit_is_413(inbox: Inbox) -> None:
    limits = BodyLimits(max_string_length=100)
    with serve_receiver(inbox, limits=limits) as server, httpx.Client(base_url=server.url) as http:
        ok = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c1", "data": "y" * 100},
                       headers={SECRET_HEADER: SECRET})
        long_value = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c2", "data": "y" * 101},
                               headers={SECRET_HEADER: SECRET})
        long_key = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c3", "k" * 101: 1},
                             headers={SECRET_HEADER: SECRET})
        long_form = http.post("/webhooks/daktela", content=b"event=call_close&name=c4&n=" + b"z" * 101,
                              headers={SECRET_HEADER: SECRET, "Content-Type": FORM})
    assert ok.status_code == 202
    for response in (long_value, long_key, long_form):
        assert response.status_code == 413
        assert response.json()["error"] == "a string in the body is longer than 100 characters"
    assert [e.record_id for e in inbox.events()] == ["c1"]


@pytest.mark.parametrize("field", ["max_body_bytes", "max_depth", "max_keys", "max_string_length"])
@pytest.mark.parametrize("value", [0, -1, True])
def test_limits_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"webhook\.{field}: must be a positive integer"):
        BodyLimits(**{field: value})  # type: ignore[arg-type]


# -- the event loop stays free -------------------------------------------------------------------


def test_healthz_answers_within_a_second_while_hostile_bodies_are_handled(inbox: Inbox) -> None:
    """Slow uploads of hostile bodies and bursts of capped ones never hold the event loop."""
    hostile = [
        b"event=call_close&name=c1&" + b"&".join([b"a[]=1"] * 40_000),
        b"event=call_close&name=c1&a" + b"[b]" * 1500 + b"=1",
        b'{"event": "call_close", "name": "c1", "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"event": "call_close", "name": "c1", "data": [' + b",".join([b'"v"'] * 40_000) + b"]}",
    ]
    statuses: list[int] = []

    def trickle(body: bytes) -> Iterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]
            time.sleep(0.05)

    def send_all(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):
                for body in hostile:
                    statuses.append(http.post("/webhooks/daktela", content=body,
                                              headers={SECRET_HEADER: SECRET}).status_code)
            for body in hostile:
                statuses.append(http.post("/webhooks/daktela", content=trickle(body),
                                          headers={SECRET_HEADER: SECRET}).status_code)

    with serve_receiver(inbox) as server:
        senders = [threading.Thread(target=send_all, args=(server.url,)) for _ in range(4)]
        for sender in senders:
            sender.start()
        slowest = 0.0
        checks = 0
        with httpx.Client(base_url=server.url, timeout=5) as health:
            while any(sender.is_alive() for sender in senders):
                started = time.monotonic()
                assert health.get("/healthz").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                checks += 1
                time.sleep(0.02)
        for sender in senders:
            sender.join()
    assert checks >= 5
    assert slowest < 1.0, f"/healthz took {slowest:.2f}s"
    assert len(statuses) == 4 * 4 * 4
    assert sorted(set(statuses)) == [400, 413]
    assert inbox.max_seq() == 0


# -- byte order marks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (BOM + b'{"event": "call_close", "name": "c1"}', JSON),
        (BOM + b'{"event": "call_close", "name": "c1"}', None),
        (BOM + b"event=call_close&name=c1", FORM),
        (BOM + b"event=call_close&name=c1", None),
    ],
)
def test_one_leading_utf8_bom_is_ignored(
    client: httpx.Client, inbox: Inbox, raw: bytes, content_type: str | None
) -> None:
    response = _post_raw(client, raw, content_type)
    assert response.status_code == 202, response.text
    [event] = inbox.events()
    assert (event.event, event.record_id, event.body) == ("call_close", "c1", {"event": "call_close", "name": "c1"})


def test_a_second_bom_is_content_not_a_marker(client: httpx.Client, inbox: Inbox) -> None:
    response = _post_raw(client, BOM + BOM + b'{"event": "call_close", "name": "c1"}', JSON)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON body")
    assert inbox.max_seq() == 0


# -- the secret ----------------------------------------------------------------------------------


def test_non_ascii_secret_matches_its_utf8_bytes(inbox: Inbox, caplog: pytest.LogCaptureFixture) -> None:
    secret = "tajné-heslo-ěšč"
    caplog.set_level("WARNING", logger="crmsync.webhooks")
    with serve_receiver(inbox, secret=secret) as server, httpx.Client(base_url=server.url) as http:
        right = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c1"},
                          headers={SECRET_HEADER.encode(): secret.encode("utf-8")})
        wrong = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c2"},
                          headers={SECRET_HEADER.encode(): "tajné-heslo-ěšx".encode()})
        ascii_lookalike = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c3"},
                                    headers={SECRET_HEADER: "tajne-heslo-esc"})
    assert right.status_code == 202, right.text
    assert (wrong.status_code, ascii_lookalike.status_code) == (401, 401)
    assert [e.record_id for e in inbox.events()] == ["c1"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "crmsync.webhooks"]
    assert any("non-ASCII" in m and "UTF-8" in m for m in warnings)
    assert all(secret not in m for m in warnings)


@pytest.mark.parametrize("secret", ["line\nbreak-secret-value", "nul\x00secret-value-x", "esc\x1bsecret-value-xx"])
def test_secret_with_a_control_character_refuses_to_start(inbox: Inbox, secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_app(inbox=inbox, secret=secret, enabled_entities={"activity"}, activity_types={"call"})
    assert str(info.value) == (
        "webhook.secret: contains a control character (newline, tab-like or NUL), which an HTTP header cannot carry"
    )
    assert secret not in str(info.value)


def test_two_secret_headers_are_401(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post(
        "/webhooks/daktela",
        content=json.dumps({"event": "call_close", "name": "c1"}).encode(),
        headers=[(SECRET_HEADER, SECRET), (SECRET_HEADER, SECRET), ("Content-Type", JSON)],
    )
    assert response.status_code == 401
    assert inbox.max_seq() == 0


def test_secret_in_the_query_string_is_never_accepted(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post(
        f"/webhooks/daktela?{SECRET_HEADER}={SECRET}", json={"event": "call_close", "name": "c1"}
    )
    _refused(
        response,
        401,
        f"invalid or missing {SECRET_HEADER} header (a secret in the URL query string is never accepted; "
        "send it in the header)",
        inbox,
    )


# -- second review: ambiguous JSON, ids with control characters, encodings, disconnects ------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"event": "call_close", "name": "a", "name": "b"}', "name"),  # which record changed?
        (b'{"event": "contact_update", "event": "call_close", "name": "c1"}', "event"),
        (b'{"event": "call_close", "name": "c1", "data": {"id": 1, "id": 2}}', "id"),  # nested objects too
        (b'{"event": "call_close", "name": "c1", "data": [{"x": 1}, {"y": 1, "y": 1}]}', "y"),  # even equal values
    ],
)
def test_a_json_key_written_twice_is_400(client: httpx.Client, inbox: Inbox, raw: bytes, key: str) -> None:
    _refused(_post_raw(client, raw, JSON), 400, f"duplicate key {key!r} in a JSON object (RFC 8259 §4)", inbox)


def test_the_same_key_in_different_objects_is_fine(client: httpx.Client, inbox: Inbox) -> None:
    raw = b'{"event": "call_close", "name": "c1", "data": {"name": "x", "item": {"name": "y"}}}'
    assert _post_raw(client, raw, JSON).status_code == 202
    [event] = inbox.events()
    assert event.body["data"] == {"name": "x", "item": {"name": "y"}}


@pytest.mark.parametrize("record_id", ["a\nb", "a\u0000b", "c1\r\nINFO forged log line", "tab\tbed", "del\x7f"])
def test_a_record_id_with_a_control_character_is_422(client: httpx.Client, inbox: Inbox, record_id: str) -> None:
    response = client.post(
        "/webhooks/daktela", json={"event": "call_close", "name": record_id}, headers={SECRET_HEADER: SECRET}
    )
    _refused(response, 422, f"record id {record_id!r} contains a control character (newline, tab, NUL...)", inbox)
    crm = client.post(
        "/webhooks/crm", json={"entity_type": "contact", "entity_id": record_id}, headers={SECRET_HEADER: SECRET}
    )
    assert crm.status_code == 422 and "contains a control character" in crm.json()["error"]
    assert inbox.max_seq() == 0


def test_form_record_id_with_an_encoded_newline_is_422(client: httpx.Client, inbox: Inbox) -> None:
    _refused(
        _post_raw(client, b"event=call_close&name=c1%0Aforged", FORM),
        422,
        "record id 'c1\\nforged' contains a control character (newline, tab, NUL...)",
        inbox,
    )


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("GZIP", gzip.compress),
    ],
)
def test_compressed_bodies_are_inflated(
    client: httpx.Client, inbox: Inbox, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = json.dumps({"event": "call_close", "name": f"z-{encoding}", "data": {"note": "Jiří"}}).encode()
    response = _post_raw(client, compress(body), JSON, **{"Content-Encoding": encoding})
    assert response.status_code == 202, response.text
    [event] = inbox.events()
    assert event.record_id == f"z-{encoding}" and event.body["data"] == {"note": "Jiří"}


def test_a_compression_bomb_is_413_on_the_inflated_size(client: httpx.Client, inbox: Inbox) -> None:
    bomb = gzip.compress(b'{"event": "call_close", "name": "c1", "data": "' + b"a" * 50_000_000 + b'"}')
    assert len(bomb) < 262_144
    _refused(
        _post_raw(client, bomb, JSON, **{"Content-Encoding": "gzip"}),
        413,
        "body larger than 262144 bytes once gzip is inflated",
        inbox,
    )


@pytest.mark.parametrize(
    ("encoding", "raw", "status", "message"),
    [
        ("br", b"\x0b\x02\x80{}\x03", 415, "Content-Encoding 'br' is not supported (send gzip, deflate or none)"),
        ("gzip, gzip", b"x", 415, "Content-Encoding 'gzip, gzip' is not supported (send gzip, deflate or none)"),
        ("gzip", b'{"event": "call_close", "name": "c1"}', 400, "body is not valid gzip data"),
        (
            "gzip",
            gzip.compress(b'{"event": "call_close", "name": "c1"}')[:-6],
            400,
            "body is not valid gzip data (truncated, or data after its end)",
        ),
    ],
)
def test_unsupported_or_broken_encodings_are_refused(
    client: httpx.Client, inbox: Inbox, encoding: str, raw: bytes, status: int, message: str
) -> None:
    _refused(_post_raw(client, raw, JSON, **{"Content-Encoding": encoding}), status, message, inbox)


def test_multipart_is_415_not_a_missing_event(client: httpx.Client, inbox: Inbox) -> None:
    raw = b'--x\r\nContent-Disposition: form-data; name="event"\r\n\r\ncall_close\r\n--x--\r\n'
    _refused(
        _post_raw(client, raw, "multipart/form-data; boundary=x"),
        415,
        "multipart/form-data is not supported; send application/json or application/x-www-form-urlencoded",
        inbox,
    )


def test_a_sender_that_disconnects_mid_body_leaves_nothing_and_no_traceback(
    client: httpx.Client, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    with socket.create_connection((host, port), timeout=5) as raw_socket:
        raw_socket.sendall(
            b"POST /webhooks/daktela HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"{SECRET_HEADER}: {SECRET}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"event": "call_close", '
        )
        time.sleep(0.2)
    time.sleep(0.3)
    assert client.get("/healthz").status_code == 200
    assert inbox.max_seq() == 0
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a sender that went away"


@pytest.mark.parametrize("record_id", [" padded ", "  7", "crm_ 7 "])
def test_record_ids_are_stored_exactly_as_sent(client: httpx.Client, inbox: Inbox, record_id: str) -> None:
    # A CRM id with surrounding spaces round-trips exactly (issue 9 §4): stripped, the sync
    # looked up 'padded', which does not exist, and the change was never synced.
    crm = client.post(
        "/webhooks/crm", json={"entity_type": "contact", "entity_id": record_id}, headers={SECRET_HEADER: SECRET}
    )
    assert crm.status_code == 202 and crm.json()["id"] == record_id
    daktela = _post_raw(client, f"event=call_close&name={record_id.replace(' ', '+')}".encode(), FORM)
    assert daktela.status_code == 202 and daktela.json()["id"] == record_id
    assert [event.record_id for event in inbox.events()] == [record_id, record_id]


def test_a_blank_record_id_is_still_missing(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post(
        "/webhooks/crm", json={"entity_type": "contact", "entity_id": "   "}, headers={SECRET_HEADER: SECRET}
    )
    _refused(response, 422, "missing record id: 'entity_id' must be a non-empty string", inbox)


def test_a_sender_that_stalls_mid_body_gets_408_and_frees_the_connection(inbox: Inbox) -> None:
    # Without a deadline a stalled upload held its connection (and a file descriptor) forever.
    with serve_receiver(inbox, body_timeout_s=0.5) as server, httpx.Client(base_url=server.url, timeout=5) as http:
        with socket.create_connection((server.host, server.port), timeout=5) as raw_socket:
            raw_socket.sendall(
                b"POST /webhooks/daktela HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"{SECRET_HEADER}: {SECRET}\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'{"event": "call_close", "name": "c1", '
            )
            started = time.monotonic()
            answer = raw_socket.recv(4096)
            assert time.monotonic() - started < 3
            assert answer.startswith(b"HTTP/1.1 408 ")
            assert b'"the body was not received within 0.5 seconds"' in answer
            assert http.get("/healthz").status_code == 200
        ok = http.post("/webhooks/daktela", json={"event": "call_close", "name": "c2"}, headers={SECRET_HEADER: SECRET})
        assert ok.status_code == 202
    assert [event.record_id for event in inbox.events()] == ["c2"]
