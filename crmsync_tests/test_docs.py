"""The docs are tested: every block marked runnable in README.md and docs/**/*.md runs as written.

Convention (docs/contributing.md): put ``<!-- runnable -->`` on the line right before a fenced
shell block (``sh``, ``bash``, ``shell``) or a ``python`` block. The test runs each marked
block, in document order (README first, then docs/ alphabetically), in one demo world set up
like ``make demo`` leaves it: a temp directory with ``data/`` (the demo CRM, ``sync.yaml``,
``dagster_home``, ``crmsync.env``; the first sync is the README's own) and the project's
``mappings/``, ``pyproject.toml`` and ``workspace.yaml`` beside it, with the Daktela simulator
serving on loopback and the environment of ``source data/crmsync.env`` set. Shell blocks run
with ``bash -euo pipefail``, Python blocks with the project's interpreter; a non-zero exit (or
a traceback) fails the test and prints the output.

Every other ``python`` block must at least compile, so a snippet cannot rot into a syntax error.
Blocks that serve forever (``make dev``, ``crmsync simulator``) or write outside the world
(``make demo``) are simply not marked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
SHELL_LANGS = {"sh", "bash", "shell"}
PYTHON_LANGS = {"python", "py"}
BLOCK_TIMEOUT_S = 120
#: What the world links in from the project (read-only).
PROJECT_FILES = ("mappings", "pyproject.toml", "workspace.yaml", "crmsync_pipelines", "README.md", "docs")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    runnable: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract_blocks(path: Path, text: str) -> list[Block]:
    """Every fenced code block of a markdown text, with its language and runnable mark.

    A block is runnable when the closest non-blank line above its opening fence is exactly
    :data:`MARKER`. Indented fences (inside list items) are found too; their indent is removed.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        lang = (opening["info"].split() or [""])[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            line = lines[end]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            end += 1
        previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        blocks.append(Block(path, index + 1, lang, "\n".join(body) + "\n", previous == MARKER))
        index = end + 1
    return blocks


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in extract_blocks(path, path.read_text(encoding="utf-8"))]


def runnable_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.runnable]


# -- the convention itself ------------------------------------------------------------------------


def test_marker_marks_only_the_next_block() -> None:
    text = "\n".join([
        "# t", "<!-- runnable -->", "", "```sh", "echo one", "```", "```sh", "echo two", "```",
        "1. step", "   <!-- runnable -->", "   ```python", "   print(3)", "   ```",
        "````md", "```sh", "not a block", "```", "````",
    ])
    blocks = extract_blocks(ROOT / "x.md", text)
    assert [(b.line, b.lang, b.code, b.runnable) for b in blocks] == [
        (4, "sh", "echo one\n", True),
        (7, "sh", "echo two\n", False),
        (12, "python", "print(3)\n", True),
        (15, "md", "```sh\nnot a block\n```\n", False),
    ]


def test_runnable_blocks_are_shell_or_python() -> None:
    wrong = [b.id for b in runnable_blocks() if b.lang not in SHELL_LANGS | PYTHON_LANGS]
    assert not wrong, f"runnable blocks must be sh/bash or python: {wrong}"


def test_readme_and_the_dagster_simulator_and_staging_pages_have_runnable_blocks() -> None:
    marked = {b.path.name for b in runnable_blocks()}
    assert {"README.md", "dagster.md", "simulator.md", "staging.md"} <= marked


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.lang in PYTHON_LANGS], ids=lambda b: b.id)
def test_every_python_block_compiles(block: Block) -> None:
    compile(block.code, block.id, "exec")


# -- running the marked blocks ---------------------------------------------------------------------


@dataclass
class DocsWorld:
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def docs_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsWorld]:
    """The world ``make demo`` leaves behind, in a temp dir, with the simulator serving."""
    import dagster as dg

    from crmsync_pipelines.cli.demo_setup import (
        DemoPaths,
        demo_environment,
        ensure_demo_crm,
        patched_environ,
        write_dagster_yaml,
        write_demo_config,
        write_env_file,
    )
    from crmsync_pipelines.simulator import SimulatorConfig, run_simulator

    root = tmp_path_factory.mktemp("docs-world")
    for name in PROJECT_FILES:
        (root / name).symlink_to(ROOT / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    paths = DemoPaths.under(root / "data")
    ensure_demo_crm(paths, accounts=10, contacts=30)
    write_demo_config(paths)
    write_dagster_yaml(paths.dagster_home)
    with run_simulator(SimulatorConfig(db_path=paths.simulator_db, seed="demo")) as simulator:
        demo_env = demo_environment(paths, base_url=simulator.base_url, token=simulator.token)
        write_env_file(paths, demo_env)
        # The Dagster instance exists (a doc block may read its history); the first sync is
        # the README's own `crmsync sync` (a Dagster run here would only cost time).
        with patched_environ(demo_env), dg.DagsterInstance.from_config(str(paths.dagster_home)):
            pass
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("CRMSYNC_", "DAKTELA_", "DAGSTER_", "PYTEST_", "VIRTUAL_ENV"))}
        env.update(demo_env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["HOME"] = str(root)  # nothing a doc command writes lands in the real home
        yield DocsWorld(root=root, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.id)
def test_runnable_block_runs_as_written(block: Block, docs_world: DocsWorld) -> None:
    if block.lang in PYTHON_LANGS:
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    try:
        done = subprocess.run(command, cwd=docs_world.root, env=docs_world.env, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id} did not finish within {BLOCK_TIMEOUT_S}s:\n{block.code}\n{exc.output}")
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{block.code}\n--- output ---\n{output}"
    assert "Traceback (most recent call last)" not in output, f"{block.id} printed a traceback:\n{output}"
