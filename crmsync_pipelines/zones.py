"""IANA time zones by name, never the host's zone in disguise.

``zoneinfo.ZoneInfo`` opens any file of the tz database, and three of them are not places:
``localtime`` is a link to the host's ``/etc/localtime`` (so ``daktela.timezone: localtime``
or a date written ``... localtime`` silently meant whatever zone the server runs in),
``posixrules`` is the rule default of POSIX TZ strings (America/New_York on most systems),
and ``Factory`` is the "-00" placeholder of an unconfigured machine. crmsync reads every zone
name through ``zone_named``, so a zone is always the one the name says.

Shared by the config models (``daktela.timezone``), the SQL adapter settings
(``crm.timezone``) and the ``date_format`` transformer (params and zones in values).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

#: tz database files that name no place (see the module docstring).
NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})


class UnknownZoneError(ValueError):
    """The name is not an IANA zone of a place (``str(exc)`` is the name)."""


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Prague``, ``UTC``); ``UnknownZoneError`` otherwise.

    Raises for unknown names, paths (``../etc/passwd``, refused by ``zoneinfo`` itself) and
    the files in ``NOT_PLACES``.
    """
    if not isinstance(name, str) or name.strip() in NOT_PLACES:
        raise UnknownZoneError(repr(name))
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise UnknownZoneError(repr(name)) from None


__all__ = ["NOT_PLACES", "UnknownZoneError", "zone_named"]
