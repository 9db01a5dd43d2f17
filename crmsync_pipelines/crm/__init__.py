"""CRM side: the adapter contract, the built-in SQL adapter and adapter selection."""

from crmsync_pipelines.crm.base import CrmAdapter, ReadOnlyActivitiesMixin, Record
from crmsync_pipelines.errors import NotSupportedError

__all__ = ["CrmAdapter", "NotSupportedError", "ReadOnlyActivitiesMixin", "Record"]
