-- crmsync staging schema (DuckDB). Every table is described in docs/staging.md.
-- Statements are idempotent so opening an existing file is always safe.

CREATE TABLE IF NOT EXISTS schema_info (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- One row per extract: a window of an entity (batch runs) or an explicit id list (webhooks, retries).
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY,
    entity VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,                 -- window | ids
    run_id VARCHAR NOT NULL,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    extracted INTEGER NOT NULL DEFAULT 0,
    mapped_at TIMESTAMPTZ,
    loaded_at TIMESTAMPTZ
);

-- Source records exactly as the source adapter returned them (CRM for accounts/contacts,
-- Daktela for activities), one row per record per batch.
CREATE TABLE IF NOT EXISTS raw_records (
    batch_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    payload JSON NOT NULL,
    extracted_at TIMESTAMPTZ NOT NULL,
    raw_hash VARCHAR                       -- md5 of the canonical JSON payload (map_memo)
);
ALTER TABLE raw_records ADD COLUMN IF NOT EXISTS raw_hash VARCHAR;

-- The mapped target payload per source record, with its lookup key and a stable hash.
CREATE TABLE IF NOT EXISTS mapped_records (
    batch_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    lookup_key VARCHAR,
    payload JSON,
    payload_hash VARCHAR,
    invalid_class VARCHAR,                 -- NULL when the record may be loaded
    invalid_reason VARCHAR,
    unchanged BOOLEAN                      -- TRUE: the load found it equal to synced_state set-wise
);
ALTER TABLE mapped_records ADD COLUMN IF NOT EXISTS unchanged BOOLEAN;

-- The last clean mapping of each source record, reused while its raw payload (raw_hash), the
-- mapping version (engine/mapversion.py) and the raw payloads of the records its relations
-- resolve through (relation_witness) are unchanged: an unchanged re-scan costs no mapping.
CREATE TABLE IF NOT EXISTS map_memo (
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,
    mapping_version VARCHAR NOT NULL,
    relation_witness VARCHAR NOT NULL,
    lookup_key VARCHAR,
    payload JSON,
    payload_hash VARCHAR,
    PRIMARY KEY (entity, source_id)
);

-- Scratch: the memo rows a batch's mapping is about to save (``StagingStore.save_memo``), numbered
-- so they are saved range by range (removed once saved). A table in the file, not a temporary
-- one: its rows spill to the file instead of counting against DuckDB's memory limit.
CREATE TABLE IF NOT EXISTS memo_pending (
    batch_id VARCHAR NOT NULL,
    n BIGINT NOT NULL,
    source_id VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,
    witness VARCHAR NOT NULL,
    lookup_key VARCHAR,
    payload JSON,
    payload_hash VARCHAR
);

-- The latest mapping of a source id to its target key (relations resolve through this).
CREATE TABLE IF NOT EXISTS key_map (
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    lookup_key VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entity, source_id)
);

-- What the target system held for the keys a load looked at (normalized, mapped fields only).
CREATE TABLE IF NOT EXISTS target_snapshot (
    entity VARCHAR NOT NULL,
    lookup_key VARCHAR NOT NULL,
    target_id VARCHAR,
    payload JSON,
    fetched_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (entity, lookup_key)
);

-- The decision a load made for each record of a batch.
CREATE TABLE IF NOT EXISTS diffs (
    batch_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    lookup_key VARCHAR,
    action VARCHAR NOT NULL,               -- create | update | unchanged | invalid
    changed_fields JSON,
    decided_at TIMESTAMPTZ NOT NULL
);

-- What crmsync last wrote to (or confirmed in) the target, per key: the change-detection memory.
CREATE TABLE IF NOT EXISTS synced_state (
    entity VARCHAR NOT NULL,
    lookup_key VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    target_id VARCHAR,
    payload_hash VARCHAR NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (entity, lookup_key)
);

-- One row per record per run: the audit trail.
CREATE TABLE IF NOT EXISTS ledger (
    run_id VARCHAR NOT NULL,
    batch_id VARCHAR,
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    target_id VARCHAR,
    lookup_key VARCHAR,
    outcome VARCHAR NOT NULL,              -- created | updated | unchanged | failed | skipped
    error_class VARCHAR,
    error_message VARCHAR,
    payload_hash VARCHAR,
    note VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL
);

-- Scratch: the records of a run and batch that landed (``StagingStore.iter_landed``), numbered
-- by source id so each chunk reads its own range (removed when the iteration ends).
CREATE TABLE IF NOT EXISTS landed_chunks (
    run_id VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    n BIGINT NOT NULL,
    source_id VARCHAR NOT NULL,
    lookup_key VARCHAR NOT NULL
);

-- Records that failed and have not succeeded since: the dead-letter queue.
CREATE TABLE IF NOT EXISTS failed_records (
    entity VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    lookup_key VARCHAR,
    error_class VARCHAR NOT NULL,
    error_message VARCHAR,
    attempts INTEGER NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at TIMESTAMPTZ NOT NULL,
    last_run_id VARCHAR NOT NULL,
    payload JSON,
    payload_hash VARCHAR,
    PRIMARY KEY (entity, source_id)
);

-- Activities synced while still open (or closed within the settle window): re-read until settled.
CREATE TABLE IF NOT EXISTS unsettled_activities (
    name VARCHAR PRIMARY KEY,
    activity_type VARCHAR NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_checked_at TIMESTAMPTZ NOT NULL
);
