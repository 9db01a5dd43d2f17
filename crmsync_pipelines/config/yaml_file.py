"""Reading one YAML document into a dict, with errors that name the file.

Shared by ``sync.yaml`` and mapping files. YAML syntax errors are reported with the line
and column but without the parser's source snippet, because that snippet can contain a
token written inline in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from crmsync_pipelines.errors import ConfigError


def display_path(path: Path) -> str:
    """How a file is named in error messages: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if path.is_absolute() and Path.cwd() in path.parents else str(path)
    except (OSError, ValueError):
        return str(path)


def read_yaml_mapping(path: Path, *, kind: str) -> dict[str, Any]:
    """Parse ``path`` and require a mapping at the top level.

    ``kind`` ("configuration file", "mapping file") only shapes the messages.
    """
    shown = display_path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} not found", file=shown)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {kind}: {type(exc).__name__}", file=shown) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"invalid YAML{where}: {problem}", file=shown) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=shown) from None
    if data is None:
        raise ConfigError(f"{kind} is empty; expected a YAML mapping", file=shown)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{kind} must be a YAML mapping at the top level, not a {type(data).__name__}", file=shown
        )
    return data
