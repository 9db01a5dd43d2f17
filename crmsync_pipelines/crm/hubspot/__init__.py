"""The built-in HubSpot adapter (``crm: {adapter: hubspot}``) and its simulator.

See docs/crms/hubspot.md for setup (private app scopes, the unique external-id property),
the activity record, limits and what is not supported.
"""

from crmsync_pipelines.crm.hubspot.adapter import HubSpotAdapter
from crmsync_pipelines.crm.hubspot.settings import HubSpotSettings

__all__ = ["HubSpotAdapter", "HubSpotSettings"]
