"""URLs of HTTP CRMs as they may appear in messages."""

from __future__ import annotations

from urllib.parse import urlsplit

#: Hosts plain ``http://`` is allowed for (a bundled simulator on this machine): a CRM key or
#: bearer token sent over http anywhere else crosses the network readable.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: where a request went, for an error message.

    Path, query, fragment and any ``user:password@`` are dropped, so a key someone put into
    the configured URL (``?hapikey=...``) never reaches a message or a log.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
