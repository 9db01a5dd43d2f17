"""``auto_create_contact``: a default Daktela contact per synced account, so inbound calls pair.

Behaves like the PHP SDK (skip_if_empty, skip_if_exists with modes all/any, the contact's
``account`` forced to the account's Daktela name) but batched: one lookup of the contacts by
key and one lookup of the accounts' existing contacts per chunk, instead of up to six calls per
account (W7). Results are ledgered under the entity ``auto_contact`` keyed by the account's
CRM id.
"""

from __future__ import annotations

from typing import Any

from crmsync_pipelines.config.models import AutoCreateContact
from crmsync_pipelines.daktela.normalize import comparable
from crmsync_pipelines.engine.apply import split_unchanged
from crmsync_pipelines.engine.compare import payload_hash
from crmsync_pipelines.engine.context import EngineContext
from crmsync_pipelines.engine.load_daktela import DaktelaLoader, LoadOutcome
from crmsync_pipelines.engine.paths import key_of, read_path
from crmsync_pipelines.errors import MappingError
from crmsync_pipelines.staging.store import MappedRow, RecordResult

LEDGER_ENTITY = "auto_contact"


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return next((v for v in value if v not in (None, "")), None)
    return value


def _matches(candidate: dict[str, Any], field: str, wanted: Any) -> bool:
    have = read_path(candidate, field)
    values = have if isinstance(have, list) else [have]
    return any(comparable(v) == comparable(wanted) for v in values if v not in (None, ""))


def _already_has_contact(settings: AutoCreateContact, payload: dict[str, Any],
                         candidates: list[dict[str, Any]]) -> bool:
    fields = settings.skip_if_exists
    if not fields or not candidates:
        return False
    wanted = {f: _first(read_path(payload, f)) for f in fields}
    if settings.skip_if_exists_mode == "all":
        if any(v in (None, "") for v in wanted.values()):
            return False  # an empty listed field disables the check (as documented for the PHP SDK)
        return any(all(_matches(c, f, v) for f, v in wanted.items()) for c in candidates)
    return any(_matches(c, f, v) for c in candidates for f, v in wanted.items() if v not in (None, ""))


class AutoContactCreator:
    def __init__(self, ctx: EngineContext, run_id: str, batch_id: str, *, dry_run: bool = False,
                 verify: bool = False, retry_held: bool = False) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.batch_id = batch_id
        self.dry_run = dry_run
        self.verify = verify
        #: ``crmsync retry-failed``: also write contacts held back after a validation failure.
        self.retry_held = retry_held
        account = ctx.entity_config("account")
        self.settings = account.auto_create_contact
        self.mapping = self.settings.mapping if self.settings is not None else None

    @property
    def enabled(self) -> bool:
        return self.mapping is not None

    def run(self) -> LoadOutcome:
        """An auto-contact for every account of the batch now in Daktela: the accounts this run
        ledgered as created, updated or unchanged, read back from the ledger chunk by chunk
        (nothing per account is held in memory across chunks)."""
        outcome = LoadOutcome()
        if not self.enabled:
            return outcome
        for chunk in self.ctx.staging.iter_landed(self.run_id, self.batch_id, "account", self.ctx.settings.chunk_size):
            outcome.add(self._chunk(chunk, outcome))
        return outcome

    def _chunk(self, accounts: list[tuple[str, str]], outcome: LoadOutcome) -> list[RecordResult]:
        assert self.settings is not None and self.mapping is not None
        raw = self.ctx.staging.latest_raw("account", [sid for sid, _ in accounts])
        rows: list[MappedRow] = []
        skipped: list[RecordResult] = []
        for source_id, account_name in accounts:
            record = raw.get(source_id)
            if record is None:
                continue
            try:
                payload = self.ctx.mapper.map(record, self.mapping, "crm_to_cc")
            except MappingError as exc:  # e.g. a refused phone number: this auto-contact fails alone
                skipped.append(RecordResult(source_id, "failed", error_class="validation",
                                            error_message=f"[mapping] auto-contact: {exc}"))
                continue
            payload["account"] = account_name
            if self.settings.skip_if_empty and all(
                key_of(read_path(payload, f)) is None for f in self.settings.skip_if_empty
            ):
                outcome.counts["skipped_empty"] += 1
                continue
            key = key_of(read_path(payload, self.mapping.lookup_field))
            if key is None:
                skipped.append(RecordResult(source_id, "failed", error_class="validation",
                                            error_message=f"[missing_key] auto-contact lookup field "
                                                          f"{self.mapping.lookup_field!r} is empty"))
                continue
            rows.append(MappedRow(source_id, key, payload, payload_hash(payload), None, None))
        if not self.verify:
            # Unchanged and held-back contacts need no skip_if_exists lookup either: 0 calls.
            done, rows = split_unchanged(self.ctx.staging, LEDGER_ENTITY, rows, verify=False,
                                         retry_held=self.retry_held)
            skipped.extend(done)
        rows = self._drop_existing_duplicates(rows, skipped)
        if not self.dry_run and skipped:
            self.ctx.staging.record_results(self.run_id, self.batch_id, LEDGER_ENTITY, skipped)
        loader = DaktelaLoader(self.ctx, "contact", self.run_id, self.batch_id, dry_run=self.dry_run,
                               verify=self.verify, ledger_entity=LEDGER_ENTITY, mapping=self.mapping,
                               retry_held=self.retry_held)
        return skipped + (loader.process(rows, outcome) if rows else [])

    def _drop_existing_duplicates(self, rows: list[MappedRow], skipped: list[RecordResult]) -> list[MappedRow]:
        """skip_if_exists: an account that already has a matching contact gets no new one."""
        assert self.settings is not None and self.mapping is not None
        if not self.settings.skip_if_exists or not rows:
            return rows
        remembered = self.ctx.staging.known_keys(LEDGER_ENTITY, [r.lookup_key or "" for r in rows])
        fresh = [r for r in rows if r.lookup_key not in remembered]
        if not fresh:
            return rows
        by_key = self.ctx.daktela.get_by_field("contacts", self.mapping.lookup_field,
                                               [r.lookup_key or "" for r in fresh])
        new = [r for r in fresh if not by_key.get(r.lookup_key or "")]
        if not new:
            return rows
        accounts = sorted({str((r.payload or {}).get("account")) for r in new})
        existing = self.ctx.daktela.get_by_field("contacts", "account", accounts)
        keep: list[MappedRow] = []
        new_ids = {r.source_id for r in new}
        for row in rows:
            payload = row.payload or {}
            if row.source_id in new_ids and _already_has_contact(
                self.settings, payload, existing.get(str(payload.get("account")), [])
            ):
                skipped.append(RecordResult(row.source_id, "skipped", row.lookup_key, payload_hash=row.payload_hash,
                                            note="auto-contact: the account already has a matching contact",
                                            remember=False))
                continue
            keep.append(row)
        return keep
