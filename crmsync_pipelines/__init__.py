"""crmsync: keep a Daktela Contact Centre V6 instance and a CRM in sync.

The framework-free core (``config``, ``mapping``, ``daktela``, ``crm``, ``staging``,
``engine``, ``webhooks``) never imports Dagster; only ``defs`` and ``definitions`` do, so
the same engine runs from the CLI, from tests and from Dagster.
"""

__version__ = "0.1.0"
