"""Reading a CRM simulator's saved state (``--state`` files, the demo's data directory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SimulatorStateError(ValueError):
    """The file is not a state a CRM simulator saved (truncated, edited by hand, another format)."""


@contextmanager
def reading_state(path: Path, simulator: str) -> Iterator[None]:
    """Turn any decoding problem inside the block into one ``SimulatorStateError`` naming the file."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise SimulatorStateError(
            f"{path} is not a saved {simulator} simulator state ({type(exc).__name__}: {exc}); "
            "delete it to start from the demo data again"
        ) from None


@contextmanager
def demo_state_checked(running: AbstractContextManager[T]) -> Iterator[T]:
    """Enter a simulator of ``crmsync demo``; a broken saved state ends the command with its
    one-line reason (click prints it, exit code 1) instead of a traceback."""
    import click

    with ExitStack() as stack:
        try:
            handle = stack.enter_context(running)
        except SimulatorStateError as exc:
            raise click.ClickException(str(exc)) from None
        yield handle
