"""Reading one YAML document into a dict, with errors that name the file.

Shared by ``sync.yaml`` and mapping files. YAML syntax errors are reported with the line
and column but without the parser's source snippet, because that snippet can contain a
token written inline in the file.

Configuration is often assembled by deployment tooling, so a document is bounded before any
of it is used (each limit is a ``ConfigError``, never a hang, a memory blow-up or a
``RecursionError``):

- the file is at most ``MAX_FILE_BYTES`` (1 MiB);
- nesting is at most ``MAX_DEPTH`` levels (PyYAML's composer recurses per level), also
  with every alias expanded (interpolation and validation recurse per level);
- the document, **with every alias expanded**, has at most ``MAX_NODES`` nodes. Aliases
  share one Python object, but ``${VAR}`` interpolation and validation walk each use, so 9
  levels of 10 aliases ("billion laughs") would cost 10^9 visits; the expanded size is
  computed on the node graph in linear time before anything is constructed. An alias
  that contains itself (``&a [*a]``) is refused as recursive.
- a value that cannot be constructed (an integer of 5,000 digits, a date like
  ``2026-13-45``) is an error at its line and column;
- a key written twice in one mapping is an error (YAML requires unique keys; PyYAML would
  silently keep the last one, so ``batch_size`` added by tooling below an existing one would
  win or lose unnoticed). Keys brought in by a ``<<`` merge may be overridden, as YAML allows;
  a second ``<<`` in one mapping is a duplicate key too (``<<: [*a, *b]`` merges several).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from crmsync_pipelines.errors import ConfigError

MAX_FILE_BYTES = 1_048_576
MAX_DEPTH = 64
MAX_NODES = 100_000
#: Characters of one integer scalar (CPython refuses int() of more than 4300 digits anyway).
MAX_INT_LENGTH = 100


def display_path(path: Path) -> str:
    """How a file is named in error messages: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if path.is_absolute() and Path.cwd() in path.parents else str(path)
    except (OSError, ValueError):
        return str(path)


class _LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits, reported at the node where it was found."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting while composing and unbuildable values while constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        merges = 0
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                merges += 1
                if merges > 1:  # PyYAML silently let one of them win
                    raise _LimitError(
                        problem="duplicate merge key '<<' (merge several mappings with <<: [*a, *b])",
                        problem_mark=key_node.start_mark,
                    )
                continue
            if not isinstance(key_node, ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise _LimitError(problem=f"duplicate key {key!r} (YAML keys must be unique)",
                                  problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # int("1" * 5000) and date(2026, 13, 45) raise plain ValueErrors inside PyYAML.
            raise _LimitError(problem=f"invalid {_kind(node)} value: {exc}", problem_mark=node.start_mark) from None


def _construct_bounded_int(loader: yaml.SafeLoader, node: Node) -> Any:
    text = str(node.value)
    if len(text) > MAX_INT_LENGTH:
        raise _LimitError(problem=f"integer longer than {MAX_INT_LENGTH} characters", problem_mark=node.start_mark)
    return loader.construct_yaml_int(node)  # type: ignore[arg-type]


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_bounded_int)


def _kind(node: Node) -> str:
    return str(node.tag).rsplit(":", 1)[-1] if node.tag else "scalar"


def _check_expanded(root: Node) -> None:
    """Refuse a document whose alias-expanded form is too large, too deep, or infinite.

    Iterative post-order over the node graph, memoised per node, so a shared (aliased) node
    is counted once per use without being visited once per use. A node met again while its
    own children are being counted (it is on the current path) is a recursive alias.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded node count capped, expanded depth)
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = [sizes[id(child)] for child in _children(node)]
            count = min(1 + sum(c for c, _ in children), MAX_NODES + 1)
            depth = 1 + max((d for _, d in children), default=0)
            if count > MAX_NODES:
                raise _LimitError(
                    problem=f"more than {MAX_NODES:,} values once aliases are expanded (an alias bomb?)",
                    problem_mark=node.start_mark,
                )
            if depth > MAX_DEPTH:
                raise _LimitError(
                    problem=f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                    problem_mark=node.start_mark,
                )
            sizes[key] = (count, depth)
            on_path.discard(key)
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise _LimitError(
                    problem="an alias refers to a node that contains it (recursive alias)",
                    problem_mark=child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document within the limits above; raises ``yaml.YAMLError`` (marked when possible)."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a config file (``not found``, ``is a directory`` ...), or None.

    A directory, a FIFO or a device is named as what it is: "not found" for a path that exists
    sent users looking for a typo, and reading a FIFO or ``/dev/zero`` would block or never end.
    """
    try:
        if path.is_file():
            return None
        if path.is_dir():
            return "is a directory, not a file"
        if path.exists():
            return "is not a regular file (a FIFO, socket or device)"
    except (OSError, ValueError):  # a NUL in the path, a symlink loop, a name too long
        return "is not a usable path"
    return "not found"


def _undecodable(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is, as line and column (1-based)."""
    before = data[: exc.start]
    line = before.count(b"\n") + 1
    column = exc.start - (before.rfind(b"\n") + 1) + 1
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "is UTF-16 text; save it as UTF-8"
    return f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column} (save the file as UTF-8)"


def read_yaml_document(path: Path, *, kind: str) -> Any:
    """The parsed document of ``path`` (any YAML value), within the size, depth and alias limits.

    Raises ``ConfigError`` naming the file for a missing, unreadable, oversized or invalid file.
    """
    shown = display_path(path)
    problem = file_problem(path)
    if problem is not None:
        raise ConfigError(f"{kind} {problem}", file=shown)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{kind} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)", file=shown
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:  # the file grew after stat()
            raise ConfigError(f"{kind} is larger than the limit of {MAX_FILE_BYTES:,} bytes (1 MiB)", file=shown)
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{kind} {_undecodable(data, exc)}", file=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {kind}: {type(exc).__name__}", file=shown) from None
    try:
        return load_yaml_text(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"invalid YAML{where}: {problem}", file=shown) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=shown) from None
    except RecursionError:
        # Not expected past the depth limit; kept so no traceback can reach a user.
        raise ConfigError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels", file=shown) from None


def read_yaml_mapping(path: Path, *, kind: str) -> dict[str, Any]:
    """Parse ``path`` and require a mapping at the top level.

    ``kind`` ("configuration file", "mapping file") only shapes the messages.
    """
    data = read_yaml_document(path, kind=kind)
    shown = display_path(path)
    if data is None:
        raise ConfigError(f"{kind} is empty; expected a YAML mapping", file=shown)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{kind} must be a YAML mapping at the top level, not a {type(data).__name__}", file=shown
        )
    return data
