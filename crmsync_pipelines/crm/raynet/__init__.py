"""The built-in Raynet CRM adapter (``crm: {adapter: raynet}``), its settings and its simulator."""

from crmsync_pipelines.crm.raynet.adapter import RaynetAdapter
from crmsync_pipelines.crm.raynet.settings import RaynetActivitySettings, RaynetSettings

__all__ = ["RaynetActivitySettings", "RaynetAdapter", "RaynetSettings"]
