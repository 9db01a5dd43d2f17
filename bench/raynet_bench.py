"""Raynet benchmark: activities Daktela -> Raynet, crmsync vs the naive find-then-write.

Both simulators run on loopback (Raynet with ``--latency-ms`` per request). The Daktela
simulator holds ``--activities`` activities (60 % calls, 20 % e-mails, 20 % chats); a third
of them have a Daktela contact of ours (``crm_<person id>``), a third only the caller's number
or e-mail address of a Raynet person, the rest nobody known. Phases, each measured by the
Raynet simulator's own request counter:

1. crmsync first load (new activities);
2. crmsync re-run after 10 % of the activities were closed (late close -> updates);
3. the naive way on a fresh Raynet instance, as the Daktela PHP SDK's Raynet adapter does it:
   per activity a fulltext person lookup (when there is no contact), a ``GET .../ext/...``
   idempotency lookup, then a ``PUT`` (or ``POST`` for the closed ones).

Prints one table: requests per activity, records per second and how many activities a day
fit in Raynet's 24,000-request budget on that path. Usage:
``.venv/bin/python bench/raynet_bench.py [--activities 1000] [--persons 500] [--latency-ms 2]``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 24_000


def _daktela_activities(sim: Any, raynet: Any, count: int, rng: random.Random) -> list[str]:
    persons = [p for p in raynet.store.all("person") if not p.get("userAccount")]
    sim.insert_many("contacts", [{"name": f"crm_{p['id']}", "title": f"{p['firstName']} {p['lastName']}",
                                  "database": "default"} for p in persons])
    start = datetime.now(UTC) - timedelta(hours=20)
    records = []
    for index in range(count):
        kind = "CALL" if index % 5 < 3 else ("EMAIL" if index % 5 == 3 else "CHAT")
        person = rng.choice(persons)
        record: dict[str, Any] = {
            "type": kind, "queue": {"CALL": 3001, "EMAIL": 3004}.get(kind, 3005),
            "time": (start + timedelta(seconds=index * 30)).strftime("%Y-%m-%d %H:%M:%S"),
            "title": f"Aktivita {index}", "action": "OPEN", "priority": 0, "contact": None,
        }
        who = index % 3
        if who == 0:
            record["contact"] = f"crm_{person['id']}"
        if kind == "CALL":
            number = person["contactInfo"]["tel1"].replace(" ", "") if who == 1 else f"+42077{index:07d}"
            record["item"] = {"clid": number, "direction": "in"}
        elif kind == "EMAIL":
            address = person["contactInfo"]["email"] if who == 1 else f"nobody{index}@example.org"
            record["item"] = {"address": address, "title": record["title"], "direction": "in"}
        records.append(record)
    # One by one: insert() also creates the channel record (call, e-mail) the activity's item points to.
    return [sim.insert("activities", record)["name"] for record in records]


def _config(tmp: Path, raynet: Any) -> Path:
    mappings = ROOT / "mappings" / "raynet"
    text = f"""
daktela:
  instance_url: ${{DAKTELA_INSTANCE_URL}}
  access_token: ${{DAKTELA_ACCESS_TOKEN}}
  rate_limit_per_s: 1000
crm:
  adapter: raynet
  instance_name: {raynet.config.instance_name}
  username: {raynet.config.username}
  api_key: ${{RAYNET_API_KEY}}
  base_url: {raynet.api_url}
  activities: {{owner_id: {raynet.user_ids[2]}}}
staging: {{path: {tmp / 'crmsync.duckdb'}}}
sync:
  batch_size: 100
  entities:
    activity:
      enabled: true
      direction: cc_to_crm
      mapping_file: {mappings / 'activities.yaml'}
      activity_types: [call, email, web]
      rescan_partitions: 0
"""
    path = tmp / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _naive(raynet: Any, daktela: Any, names: list[str], closed: set[str]) -> tuple[int, int, float, float]:
    """The PHP SDK's way: per activity person lookup, extId lookup, then the write."""
    config = raynet.config
    client = httpx.Client(base_url=raynet.api_url, auth=(config.username, config.api_key),
                          headers={"X-Instance-Name": config.instance_name}, timeout=30)
    entity_of = {"CALL": "phoneCall", "EMAIL": "email"}
    owner = raynet.user_ids[2]

    def write(activity: dict[str, Any], status: str) -> None:
        entity = entity_of.get(activity["type"], "task")
        person = None
        contact = activity.get("contact") or {}
        if isinstance(contact, dict) and str(contact.get("name", "")).startswith("crm_"):
            person = int(contact["name"][4:])
        else:
            item = activity.get("item") or {}
            needle = (item.get("clid") or item.get("address")) if isinstance(item, dict) else None
            if needle:
                hits = client.get("person/", params={"fulltext": needle, "limit": 2}).json()["data"]
                person = hits[0]["id"] if len(hits) == 1 else None
        found = client.get(f"{entity}/ext/daktela:{activity['name']}/")
        body: dict[str, Any] = {"title": activity["title"], "priority": "DEFAULT", "owner": owner,
                                "person": person, "scheduledFrom": activity["time"] + "+01:00", "status": status}
        if entity == "task":
            body.update(resolver=owner, deadline=body["scheduledFrom"])
        if found.status_code == 200:
            client.post(f"{entity}/{found.json()['data']['id']}/", json=body)
        else:
            client.put(f"{entity}/", json={**body, "extId": f"daktela:{activity['name']}"})

    activities = {a["name"]: a for a in daktela.all("activities")}
    raynet.reset_log()
    started = time.perf_counter()
    for name in names:
        write(activities[name], "SCHEDULED")
    first = (raynet.request_count(), time.perf_counter() - started)
    raynet.reset_log()
    started = time.perf_counter()
    for name in sorted(closed):
        write(activities[name], "COMPLETED")
    client.close()
    return first[0], raynet.request_count(), first[1], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--persons", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    args = parser.parse_args()

    from crmsync_pipelines.config import load_config
    from crmsync_pipelines.crm.raynet.simulator import run_raynet_simulator
    from crmsync_pipelines.engine import SyncEngine, Window
    from crmsync_pipelines.simulator import run_simulator

    rng = random.Random(2026)
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp_text, run_simulator(seed=None) as daktela, \
            run_raynet_simulator(seed="bench", companies=50, persons=args.persons,
                                 latency_ms=args.latency_ms) as raynet, \
            run_raynet_simulator(seed="bench", companies=50, persons=args.persons,
                                 latency_ms=args.latency_ms) as naive_raynet:
        tmp = Path(tmp_text)
        names = _daktela_activities(daktela, raynet, args.activities, rng)
        closed = set(rng.sample(names, max(1, len(names) // 10)))
        os.environ.update({"DAKTELA_INSTANCE_URL": daktela.base_url, "DAKTELA_ACCESS_TOKEN": daktela.token,
                           "RAYNET_API_KEY": raynet.config.api_key})
        engine = SyncEngine.from_config(load_config(_config(tmp, raynet)))
        raynet.reset_log()
        started = time.perf_counter()
        load = engine.sync("activity", Window(None, None), "bench-1")[-1]
        rows.append(("crmsync", "first load", load.counts.get("created", 0), raynet.request_count(),
                     time.perf_counter() - started))
        links = {k.removeprefix("crm_links_"): v for k, v in load.metadata.items() if k.startswith("crm_links_")}
        for name in closed:
            daktela.close_activity(name)
        raynet.reset_log()
        started = time.perf_counter()
        load = engine.sync("activity", Window(None, None), "bench-2")[-1]
        rows.append(("crmsync", "10% closed later", load.counts.get("updated", 0), raynet.request_count(),
                     time.perf_counter() - started))
        engine.close()
        first_requests, update_requests, first_s, update_s = _naive(naive_raynet, daktela, names, closed)
        rows.append(("naive find-then-write", "first load", len(names), first_requests, first_s))
        rows.append(("naive find-then-write", "10% closed later", len(closed), update_requests, update_s))

    header = ("approach", "phase", "activities", "Raynet requests", "requests/activity", "records/s",
              "activities/day in 24,000")
    table = [header]
    for approach, phase, count, requests, seconds in rows:
        per = requests / count if count else 0.0
        table.append((approach, phase, f"{count:,}", f"{requests:,}", f"{per:.3f}",
                      f"{count / seconds:,.0f}" if seconds else "-", f"{int(BUDGET / per):,}" if per else "-"))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    print(f"\ncrmsync linking: {links}")
    print(f"Raynet: {args.activities:,} activities, {args.persons:,} persons, {args.latency_ms:g} ms latency")
    for index, row in enumerate(table):
        print(" | ".join(str(v).ljust(widths[j]) for j, v in enumerate(row)))
        if index == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
