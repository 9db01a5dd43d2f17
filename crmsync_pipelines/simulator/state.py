"""The simulated instance: records, the API operations on them and server-side test helpers.

The HTTP layer only parses requests and shapes envelopes; every rule of the real server
(validation, relation expansion, paging, tokens) lives here so the in-process helpers and the
wire API behave identically.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from crmsync_pipelines.simulator.config import SimulatorConfig
from crmsync_pipelines.simulator.filters import SqlCompiler, iter_conditions, parse_filter
from crmsync_pipelines.simulator.messages import ApiError, QueryError, message
from crmsync_pipelines.simulator.models import (
    ACTIVITY_LINKS,
    CHANNELS,
    MODELS,
    Kind,
    ModelDef,
    channel_of,
    resolve_model,
)
from crmsync_pipelines.simulator.records import (
    FormErrors,
    coerce_record,
    default_value,
    echo,
    local_now,
    project,
    projection_roots,
    validate_record,
)
from crmsync_pipelines.simulator.store import DuplicateKeyError, RecordStore

#: (event name, stored activity) -> None; set by the webhook emitter.
ActivityListener = Callable[[str, dict[str, Any]], None]


class _Renderer:
    """Expands relations of a batch of records with one lookup per related record at most."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store
        self._raw: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._rendered: dict[tuple[str, str, int], Any] = {}

    def prefetch(self, model: ModelDef, records: list[dict[str, Any]], roots: set[str] | None) -> None:
        wanted: dict[str, set[str]] = {}
        for name, spec in model.relation_fields.items():
            if roots is not None and name not in roots:
                continue
            for record in records:
                value = record.get(name)
                for item in value if isinstance(value, list) else [value]:
                    if item is not None and spec.target:
                        wanted.setdefault(spec.target, set()).add(str(item))
        if "item" in model.fields and (roots is None or "item" in roots):
            for record in records:
                channel = CHANNELS.get(str(record.get("type") or ""))
                if channel and record.get("item") is not None:
                    wanted.setdefault(channel[0], set()).add(str(record["item"]))
        for target, names in wanted.items():
            missing = [n for n in names if (target, n) not in self._raw]
            found = self._store.get_many(target, missing)
            for name in missing:
                self._raw[(target, name)] = found.get(name)

    def render(self, model: ModelDef, record: dict[str, Any], depth: int, roots: set[str] | None = None) -> dict:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if key == "_sys" or (roots is not None and key not in roots):
                continue
            spec = model.fields.get(key)
            if spec is None:
                out[key] = value
            elif spec.kind is Kind.REL:
                out[key] = self._related(spec.target or "", value, depth)
            elif spec.kind is Kind.RELLIST:
                out[key] = [self._related(spec.target or "", v, depth) for v in value or []]
            elif spec.kind is Kind.ITEM:
                channel = CHANNELS.get(str(record.get("type") or ""))
                out[key] = self._related(channel[0], value, depth) if channel else value
            elif spec.kind is Kind.CUSTOM:
                out[key] = value if value else []
            else:
                out[key] = value
        if roots is None or "_sys" in roots:
            sys_info: dict[str, Any] = {"hash": (record.get("_sys") or {}).get("hash"), "model": model.name}
            if model.name == "contacts":
                sys_info["cfScheme"] = model.cf_scheme
            out["_sys"] = sys_info
        return out

    def _related(self, target: str, name: Any, depth: int) -> Any:
        if name is None or depth <= 0:
            return name
        cache_key = (target, str(name), depth)
        if cache_key in self._rendered:
            return self._rendered[cache_key]
        raw_key = (target, str(name))
        if raw_key not in self._raw:
            self._raw[raw_key] = self._store.get(target, str(name))
        raw = self._raw[raw_key]
        rendered = {"name": name} if raw is None else self.render(MODELS[target], raw, depth - 1)
        self._rendered[cache_key] = rendered
        return rendered


class SimulatorState:
    """One simulated Daktela instance (thread-safe; shared by the server thread and tests)."""

    def __init__(self, config: SimulatorConfig) -> None:
        from crmsync_pipelines.simulator.seed import seed_instance

        self.config = config
        self.store = RecordStore(config.db_path, shuffle_seed=config.seed or "simulator")
        self.activity_listener: ActivityListener | None = None
        self._write_lock = threading.RLock()
        seed_instance(self)

    def close(self) -> None:
        self.store.close()

    # ----------------------------------------------------------------- helpers

    def now(self) -> str:
        return local_now(self.config.timezone)

    def msg(self, key: str) -> str:
        return message(self.config.locale, key)

    def model(self, name: str) -> ModelDef:
        model = resolve_model(name)
        if model is None:
            raise ApiError(404, [self.msg("unknown_model")])
        return model

    def exists(self, model: str, name: Any) -> bool:
        return self.store.exists(model, str(name))

    def _not_found(self) -> ApiError:
        text = self.msg("not_found")
        return ApiError(404, text if self.config.not_found_error_form == "string" else [text])

    def _new_key(self, model: ModelDef) -> Any:
        if model.int_key:
            return self.store.max_int_key(model.name) + 1
        while True:
            if model.key == "id_call":
                key = f"{int(time.time())}.{secrets.randbelow(10**6):06d}"
            else:
                key = f"{model.name_prefix or model.name}_{secrets.token_hex(7)[:13]}"
            if not self.store.exists(model.name, key):
                return key

    def render(self, model: ModelDef, records: list[dict[str, Any]], paths: list[str] | None = None) -> list[dict]:
        roots = None if paths is None else {p.split(".", 1)[0] for p in paths}
        renderer = _Renderer(self.store)
        renderer.prefetch(model, records, roots)
        rendered = [renderer.render(model, r, 2, roots) for r in records]
        return rendered if paths is None else [project(r, paths) for r in rendered]

    # ------------------------------------------------------------- API reads

    def api_list(self, model_name: str, query: dict[str, Any], link: tuple[str, Any] | None = None) -> dict:
        """``result`` of a list request: ``{"data": [...], "total": N}`` (total before paging)."""
        model = self.model(model_name)
        try:
            tree = parse_filter(query.get("filter"))
            if self.config.reject_activity_date_filters and model.name.startswith("activities"):
                for cond in iter_conditions(tree):
                    spec = model.fields.get(cond.field.split(".", 1)[0])
                    if spec is not None and spec.kind is Kind.DATETIME:
                        raise QueryError(f"filtering {model.name} by {cond.field!r} is not allowed")
            compiler = SqlCompiler()
            where = compiler.where(model, tree)
            order = compiler.order_by(model, query.get("sort"))
            params = list(compiler.params)
            skip, take = self._paging(query)
            paths = projection_roots(query.get("fields"), model)
        except QueryError as exc:
            raise ApiError(400, [str(exc)]) from None
        if link is not None:
            link_sql, link_params = link
            where = f"({where}) AND {link_sql}"
            params.extend(link_params)
        search = query.get("q")
        if isinstance(search, str) and search:
            where = f"({where}) AND r.data LIKE ?"
            params.append(f"%{search}%")
        total = self.store.count(model.name, where, params)
        rows = self.store.select(model.name, where, params, order, take, skip) if take else []
        return {"data": self.render(model, rows, paths), "total": total}

    def _paging(self, query: dict[str, Any]) -> tuple[int, int]:
        try:
            skip = int(query.get("skip", 0) or 0)
            take = int(query.get("take", self.config.default_take))
        except (TypeError, ValueError):
            raise QueryError("skip and take must be integers") from None
        if skip < 0 or take < 0:
            raise QueryError("skip and take must not be negative")
        if take > self.config.take_max:
            if self.config.take_max_mode == "error":
                raise QueryError(f"take must be at most {self.config.take_max}")
            take = self.config.take_max
        return skip, take

    def relation_link(self, model_name: str, name: str, relation: str) -> tuple[str, Any]:
        """The SQL linking ``activities`` to ``{model}/{name}``, for relation routes."""
        parent = self.model(model_name)
        if relation != "activities":
            raise ApiError(404, [self.msg("unknown_model")])
        if not self.store.exists(parent.name, name):
            raise self._not_found()
        if parent.name == "accounts":
            sql = (
                "json_extract(r.data, '$.\"contact\"') IN (SELECT l.k FROM records l "
                "WHERE l.model = 'contacts' AND json_extract(l.data, '$.\"account\"') = ?)"
            )
            return sql, [name]
        if parent.name in ACTIVITY_LINKS:
            value: Any = int(name) if parent.int_key else name
            return f"json_extract(r.data, '$.\"{ACTIVITY_LINKS[parent.name]}\"') = ?", [value]
        channel = channel_of(parent.name)
        if channel is not None:
            return "json_extract(r.data, '$.\"type\"') = ? AND json_extract(r.data, '$.\"item\"') = ?", [
                channel,
                name,
            ]
        raise ApiError(404, [self.msg("unknown_model")])

    def api_get(self, model_name: str, name: str, query: dict[str, Any]) -> dict:
        model = self.model(model_name)
        try:
            paths = projection_roots(query.get("fields"), model)
        except QueryError as exc:
            raise ApiError(400, [str(exc)]) from None
        record = self.store.get(model.name, name)
        if record is None:
            raise self._not_found()
        return self.render(model, [record], paths)[0]

    # ------------------------------------------------------------ API writes

    def api_create(self, model_name: str, body: Any) -> dict:
        model = self.model(model_name)
        if not isinstance(body, dict):
            raise ApiError(400, [self.msg("bad_body")])
        with self._write_lock:
            record = self._create(model, body, api=True)
        return self.render(model, [record])[0]

    def api_update(self, model_name: str, name: str, body: Any) -> dict:
        model = self.model(model_name)
        if not isinstance(body, dict):
            raise ApiError(400, [self.msg("bad_body")])
        with self._write_lock:
            existing = self.store.get(model.name, name)
            if existing is None:
                raise self._not_found()
            record = self._update(model, existing, body, api=True)
        return self.render(model, [record])[0]

    def api_delete(self, model_name: str, name: str) -> None:
        model = self.model(model_name)
        with self._write_lock:
            if not self.store.delete(model.name, name):
                raise self._not_found()

    def _create(self, model: ModelDef, body: dict[str, Any], *, api: bool) -> dict[str, Any]:
        errors = FormErrors(self.config.locale)
        written = coerce_record(model, body, errors, keep_unknown=not api, api=api)
        record = {name: default_value(name, spec) for name, spec in model.fields.items()}
        record.update(written)
        key = record.get(model.key)
        if key is None or key == "":
            key = self._new_key(model)
        elif model.int_key:
            try:
                key = int(key)
            except (TypeError, ValueError):
                errors.add(model.key, "bad_value")
        else:
            key = str(key)
        record[model.key] = key
        if model.key not in errors.form and self.store.exists(model.name, str(key)):
            errors.add(model.key, "duplicate")
        now = self.now()
        if model.has_edited:
            record["created"] = record.get("created") if not api and record.get("created") else now
            record["edited"] = record.get("edited") if not api and record.get("edited") else now
        if model.ts_field and not record.get(model.ts_field):
            record[model.ts_field] = now
        if model.name == "activities":
            self._activity_defaults(record)
        if api:
            validate_record(model, record, written, errors, creating=True, exists=self.exists)
        if errors:
            raise ApiError(400, {"form": errors.form}, echo(model, record))
        if model.name == "activities":
            self._attach_channel_record(record, body.get("item"))
        try:
            self.store.insert(model.name, str(key), record.get(model.ts_field or ""), record)
        except DuplicateKeyError:
            errors.add(model.key, "duplicate")
            raise ApiError(400, {"form": errors.form}, echo(model, record)) from None
        if model.name == "activities":
            self._emit("create", record)
        return self.store.get(model.name, str(key)) or record

    def _update(self, model: ModelDef, existing: dict[str, Any], body: dict[str, Any], *, api: bool) -> dict:
        errors = FormErrors(self.config.locale)
        written = coerce_record(model, body, errors, keep_unknown=not api, api=api)
        written.pop(model.key, None)
        merged = {k: v for k, v in existing.items() if k != "_sys"}
        merge_custom = self.config.custom_fields_put == "merge" or not api
        if merge_custom and isinstance(written.get("customFields"), dict):
            custom = dict(existing.get("customFields") or {})
            custom.update(written["customFields"])
            written["customFields"] = custom
        merged.update(written)
        if api:
            validate_record(model, merged, written, errors, creating=False, exists=self.exists)
        if errors:
            raise ApiError(400, {"form": errors.form}, echo(model, merged))
        if model.has_edited and (api or "edited" not in body):
            merged["edited"] = self.now()
        key = str(merged[model.key])
        self.store.replace(model.name, key, merged.get(model.ts_field or ""), merged)
        return self.store.get(model.name, key) or merged

    # ------------------------------------------------------------ activities

    def _activity_defaults(self, record: dict[str, Any]) -> None:
        record["type"] = record.get("type") or ""
        if not record.get("action"):
            record["action"] = "CLOSE" if record.get("time_close") else "OPEN"
        if record["action"] in ("OPEN", "CLOSE") and not record.get("time_open"):
            record["time_open"] = record["time"]
        if record["action"] == "CLOSE" and not record.get("time_close"):
            record["time_close"] = record["time"]

    def _attach_channel_record(self, activity: dict[str, Any], item: Any) -> None:
        """Link (or create) the channel record an activity of a channel type points to."""
        channel = CHANNELS.get(activity["type"])
        if channel is None:
            return
        model = MODELS[channel[0]]
        if isinstance(item, str | int) and not isinstance(item, bool) and item != "":
            activity["item"] = str(item)
            return
        body = self._derive_channel_record(activity, model)
        if isinstance(item, dict):
            body.update(item)
        created = self._create(model, body, api=False)
        activity["item"] = created[model.key]

    def _derive_channel_record(self, activity: dict[str, Any], model: ModelDef) -> dict[str, Any]:
        duration = activity.get("duration") or 0
        if model.name == "activitiesCall":
            return {
                "call_time": activity["time"], "direction": "in", "answered": activity["action"] == "CLOSE",
                "id_queue": activity.get("queue"), "id_agent": activity.get("user"),
                "contact": activity.get("contact"), "duration": duration, "waiting_time": 0,
                "ringing_time": activity.get("ringing_time") or 0, "hold_time": 0, "attempts": 1,
            }
        body = {
            "time": activity["time"], "queue": activity.get("queue"), "user": activity.get("user"),
            "contact": activity.get("contact"), "title": activity.get("title"), "duration": duration,
            "answered": activity["action"] == "CLOSE",
        }
        body["direction"] = "in" if model.name == "activitiesEmail" else "IN"
        return body

    def _emit(self, event: str, activity: dict[str, Any]) -> None:
        listener = self.activity_listener
        channel = CHANNELS.get(str(activity.get("type") or ""))
        if listener is not None and channel is not None:
            listener(f"{channel[1]}_{event}", {k: v for k, v in activity.items() if k != "_sys"})

    # --------------------------------------------------- server-side helpers

    def insert(self, model_name: str, record: dict[str, Any]) -> dict:
        model = self.model(model_name)
        with self._write_lock:
            stored = self._create(model, dict(record), api=False)
        return self.render(model, [stored])[0]

    def insert_many(self, model_name: str, records: list[dict[str, Any]]) -> int:
        """Bulk server-side insert for large fixtures (one transaction, no webhooks)."""
        model = self.model(model_name)
        now = self.now()
        rows = []
        for body in records:
            errors = FormErrors(self.config.locale)
            record = {name: default_value(name, spec) for name, spec in model.fields.items()}
            record.update(coerce_record(model, body, errors, keep_unknown=True, api=False))
            if errors:
                raise ValueError(f"bad record for {model.name}: {errors.form}")
            if record.get(model.key) in (None, ""):
                record[model.key] = self._new_key(model)
            if model.has_edited:
                record["created"] = record.get("created") or now
                record["edited"] = record.get("edited") or now
            if model.ts_field and not record.get(model.ts_field):
                record[model.ts_field] = now
            rows.append((str(record[model.key]), record.get(model.ts_field or ""), record))
        with self._write_lock:
            try:
                self.store.insert_many(model.name, rows)
            except DuplicateKeyError as exc:
                raise ValueError(f"duplicate key in {model.name}: {exc}") from None
        return len(rows)

    def update_record(self, model_name: str, name: str, changes: dict[str, Any]) -> dict:
        model = self.model(model_name)
        with self._write_lock:
            existing = self.store.get(model.name, str(name))
            if existing is None:
                raise KeyError(f"{model.name}/{name} does not exist")
            stored = self._update(model, existing, dict(changes), api=False)
        return self.render(model, [stored])[0]

    def get(self, model_name: str, name: str) -> dict | None:
        model = self.model(model_name)
        record = self.store.get(model.name, str(name))
        return None if record is None else self.render(model, [record])[0]

    def all(self, model_name: str) -> list[dict]:
        model = self.model(model_name)
        return self.render(model, self.store.all(model.name))

    def count(self, model_name: str) -> int:
        return self.store.count(self.model(model_name).name)

    def close_activity(self, name: str, **changes: Any) -> dict:
        """Close an open activity the way an agent would, and fire ``<prefix>_close``."""
        model = MODELS["activities"]
        with self._write_lock:
            existing = self.store.get("activities", name)
            if existing is None:
                raise KeyError(f"activities/{name} does not exist")
            closing = {"action": "CLOSE", "time_close": self.now(), **changes}
            if "duration" not in changes:
                closing["duration"] = _seconds_between(existing.get("time"), closing["time_close"])
            stored = self._update(model, existing, closing, api=False)
            channel = CHANNELS.get(str(stored.get("type") or ""))
            if channel and stored.get("item") is not None:
                item = self.store.get(channel[0], str(stored["item"]))
                if item is not None:
                    self._update(
                        MODELS[channel[0]], item, {"duration": stored["duration"], "answered": True}, api=False
                    )
            self._emit("close", stored)
        return self.render(model, [stored])[0]

    # ------------------------------------------------------------------ auth

    def authenticate(self, token: str | None) -> str | None:
        """The user a token belongs to, or None when it is unknown or expired."""
        if not token:
            return None
        if secrets.compare_digest(token.encode(), self.config.token.encode()):
            return self.config.username
        issued = self.store.token(token, "access")
        if issued is None or issued[1] < time.time():
            return None
        return issued[0]

    def login(self, username: str, password: str) -> dict[str, Any]:
        valid_user = secrets.compare_digest(username.encode(), self.config.username.encode())
        valid_password = secrets.compare_digest(password.encode(), self.config.password.encode())
        if not (valid_user and valid_password):
            raise ApiError(401, [self.msg("bad_login")])
        return self._issue(username)

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        issued = self.store.token(refresh_token, "refresh")
        if issued is None:
            raise ApiError(401, [self.msg("unauthorized")])
        self.store.drop_token(refresh_token)
        return self._issue(issued[0])

    def _issue(self, username: str) -> dict[str, Any]:
        access, refresh = secrets.token_hex(20), secrets.token_hex(32)
        expires = time.time() + self.config.login_token_ttl_s
        self.store.add_token(access, "access", username, expires)
        self.store.add_token(refresh, "refresh", username, time.time() + 30 * 86400)
        from zoneinfo import ZoneInfo

        expiry = datetime.fromtimestamp(expires, ZoneInfo(self.config.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        return {"accessToken": access, "refreshToken": refresh, "accessTokenExpirationDate": expiry}

    def whoami(self, username: str) -> dict[str, Any]:
        return self.get("users", username) or {"name": username}


def _seconds_between(start: Any, end: Any) -> int:
    try:
        fmt = "%Y-%m-%d %H:%M:%S"
        return max(0, int((datetime.strptime(str(end), fmt) - datetime.strptime(str(start), fmt)).total_seconds()))
    except ValueError:
        return 0
