"""DuckDB staging store (framework-free)."""

from crmsync_pipelines.staging.store import BatchInfo, MappedRow, RecordResult, StagingStore, dumps

__all__ = ["BatchInfo", "MappedRow", "RecordResult", "StagingStore", "dumps"]
