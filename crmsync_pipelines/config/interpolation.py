"""``${VAR}`` interpolation shared by ``sync.yaml`` and mapping files.

Supported forms, inside any string value (keys are never touched):
``${VAR}``, inline ``a${X}b${Y}``, and ``${VAR:-default}``. A variable that is set to ``""``
counts as set (its value is ``""``); an unset variable without a default is an error, because
the PHP SDK silently kept the literal ``${VAR}`` and sent it to the API (W21).

Every other ``${`` is an error: an unclosed ``${VAR`` or a ``${my-var}`` with characters a
variable name cannot have would otherwise be used literally (as the token, for example).
There is no escaping, so a literal ``${`` cannot be written in a value.

Error messages name the variable and the file, never a value, so a secret held in the
environment cannot leak through an error; under secret keys even the malformed placeholder
is not shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from crmsync_pipelines.config.validation_errors import SECRET_KEYS
from crmsync_pipelines.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}")
_FORMS = "write ${NAME} or ${NAME:-default}, NAME made of letters, digits and _"
_SHOWN_CHARS = 40


def _check_malformed(text: str, *, file: str, where: str) -> None:
    """Raise for any ``${`` outside a well-formed placeholder (unclosed, empty or a bad name)."""
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        _check_gap(text, position, match.start(), file=file, where=where)
        default = match.group(2)
        if default is not None and "${" in default:
            raise ConfigError(
                f"placeholders cannot be nested (in the default of ${{{match.group(1)}:-...}}); {_FORMS}",
                file=file,
                path=where or None,
            )
        position = match.end()
    _check_gap(text, position, len(text), file=file, where=where)


def _check_gap(text: str, start: int, end: int, *, file: str, where: str) -> None:
    found = text.find("${", start, end)
    if found < 0:
        return
    close = text.find("}", found)
    secret = where.rsplit(".", 1)[-1] in SECRET_KEYS
    if close < 0:
        shown = "" if secret else f" {text[found:found + _SHOWN_CHARS]!r}"
        problem = f"unclosed placeholder{shown} at character {found + 1} (no closing '}}')"
    else:
        snippet = text[found:close + 1]
        shown = "" if secret else f" {snippet if len(snippet) <= _SHOWN_CHARS else snippet[:_SHOWN_CHARS] + '...'!r}"
        problem = f"invalid placeholder{shown} at character {found + 1}"
    raise ConfigError(f"{problem}; {_FORMS}", file=file, path=where or None)


def interpolate_string(text: str, *, file: str, where: str = "", env: Mapping[str, str] | None = None) -> str:
    """Resolve every placeholder of one string."""
    if "${" not in text:
        return text
    _check_malformed(text, file=file, where=where)
    environ = os.environ if env is None else env

    def _resolve(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (set it, or write ${{{name}:-default}})",
            file=file,
            path=where or None,
        )

    return _PLACEHOLDER.sub(_resolve, text)


def interpolate(data: Any, *, file: str, env: Mapping[str, str] | None = None, _where: str = "") -> Any:
    """Resolve placeholders in every string of a parsed YAML document, recursively."""
    if isinstance(data, str):
        return interpolate_string(data, file=file, where=_where, env=env)
    if isinstance(data, dict):
        return {
            key: interpolate(value, file=file, env=env, _where=f"{_where}.{key}" if _where else str(key))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [interpolate(item, file=file, env=env, _where=f"{_where}[{i}]") for i, item in enumerate(data)]
    return data
