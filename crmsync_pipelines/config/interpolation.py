"""``${VAR}`` interpolation shared by ``sync.yaml`` and mapping files.

Supported forms, inside any string value (keys are never touched):
``${VAR}``, inline ``a${X}b${Y}``, and ``${VAR:-default}``. A variable that is set to ``""``
counts as set (its value is ``""``); an unset variable without a default is an error, because
the PHP SDK silently kept the literal ``${VAR}`` and sent it to the API (W21).

Error messages name the variable and the file, never a value, so a secret held in the
environment cannot leak through an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from crmsync_pipelines.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}")


def interpolate_string(text: str, *, file: str, where: str = "", env: Mapping[str, str] | None = None) -> str:
    """Resolve every placeholder of one string."""
    if "${" not in text:
        return text
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
