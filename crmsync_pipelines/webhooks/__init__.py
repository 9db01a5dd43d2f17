"""The real-time path: webhook receiver -> durable inbox -> Dagster sensor -> sync runs."""

from crmsync_pipelines.webhooks.app import SECRET_HEADER, create_app
from crmsync_pipelines.webhooks.inbox import EVENT_STATUSES, Inbox, InboxEvent, NewEvent
from crmsync_pipelines.webhooks.parsing import PayloadError, parse_crm_event, parse_daktela_event

__all__ = [
    "EVENT_STATUSES",
    "SECRET_HEADER",
    "Inbox",
    "InboxEvent",
    "NewEvent",
    "PayloadError",
    "create_app",
    "parse_crm_event",
    "parse_daktela_event",
]
