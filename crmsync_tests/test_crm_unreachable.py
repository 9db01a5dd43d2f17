"""A CRM that cannot be reached says where crmsync tried to connect and why, never the secret.

Before: ``GET person/ failed: ConnectError`` / ``connection failed (ConnectError)``: a user
with a wrong ``RAYNET_BASE_URL`` / ``HUBSPOT_BASE_URL`` could not tell which host was tried.
A real closed port on 127.0.0.1 (bound, then released), no mocks.
"""

from __future__ import annotations

import socket

import pytest

from crmsync_pipelines.crm.base import CrmAdapter
from crmsync_pipelines.crm.hubspot import HubSpotAdapter, HubSpotSettings
from crmsync_pipelines.crm.raynet import RaynetAdapter, RaynetSettings
from crmsync_pipelines.errors import AdapterError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unreachable_message(adapter: CrmAdapter) -> str:
    """The error of reading contacts from ``adapter`` (whose CRM does not answer); closes it."""
    with pytest.raises(AdapterError) as failed:
        list(adapter.iter_contacts(None, None))
    adapter.close()
    return str(failed.value)


def test_raynet_unreachable_names_the_host_and_the_cause() -> None:
    port = _closed_port()
    settings = RaynetSettings.parse({
        "instance_name": "moje-crm", "username": "integrace@firma.cz", "api_key": "SECRET-raynet-key",
        "base_url": f"http://127.0.0.1:{port}/api/v2/?token=SECRET-in-url", "max_retries": 0,
    })
    adapter = RaynetAdapter(settings, sleep=lambda _s: None)
    message = _unreachable_message(adapter)
    assert f"http://127.0.0.1:{port}" in message and "ConnectError" in message
    assert "SECRET" not in message


def test_hubspot_unreachable_names_the_host_and_the_cause() -> None:
    port = _closed_port()
    settings = HubSpotSettings.parse({"access_token": "pat-na1-SECRET", "base_url": f"http://127.0.0.1:{port}",
                                      "max_retries": 0})
    adapter = HubSpotAdapter(settings)
    message = _unreachable_message(adapter)
    assert f"http://127.0.0.1:{port}" in message and "ConnectError" in message
    assert "SECRET" not in message
