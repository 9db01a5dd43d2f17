"""The HubSpot private-app token travels in the ``Authorization`` header: over plain http to
a host that is not this machine it would cross the network readable. ``crm.base_url`` with
``http://`` is for the simulator on loopback only (as for Raynet). No request is made."""

from __future__ import annotations

import pytest

from crmsync_pipelines.crm.hubspot import HubSpotSettings
from crmsync_pipelines.errors import ConfigError

TOKEN = "pat-na1-SECRET-token"


@pytest.mark.parametrize("url", ["http://api.hubapi.com", "http://10.0.0.5:8080", "http://hubspot-proxy.internal"])
def test_plain_http_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        HubSpotSettings.parse({"access_token": TOKEN, "base_url": url})
    assert refused.value.path == "crm.base_url"
    message = str(refused.value)
    assert "https" in message and "loopback" in message
    assert "Value error" not in message and TOKEN not in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8767", "http://localhost:8767/", "http://[::1]:8767",
                                 "https://api.hubapi.com", "https://api-eu1.hubapi.com/"])
def test_https_and_the_loopback_simulator_are_accepted(url: str) -> None:
    assert HubSpotSettings.parse({"access_token": TOKEN, "base_url": url}).base_url == url.rstrip("/")
