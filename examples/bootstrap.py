"""Shared setup for the examples (the PHP SDK's ``examples/bootstrap.php``).

``world()`` yields the path of a ``sync.yaml`` to sync with:

* when ``CRMSYNC_CONFIG`` is set (your deployment, or ``source data/crmsync.env`` after
  ``make demo``), that file, as is: the examples then talk to the systems it names;
* otherwise a throw-away demo world in a temp directory (or ``$CRMSYNC_EXAMPLES_DIR``): the
  bundled Daktela simulator on a free loopback port, the demo CRM (SQLite, with a ``partners``
  table synced as a custom entity) and a ``sync.yaml`` derived from ``mappings/sync.yaml``.

Nothing here is needed in your own code: ``crmsync_pipelines.sync("sync.yaml")`` is the whole
setup there (docs/library.md).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def world(accounts: int = 20, contacts: int = 60) -> Iterator[Path]:
    """The config to use; a demo world (simulator + demo CRM) for the block when none is set."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configured = os.environ.get("CRMSYNC_CONFIG", "").strip()
    if configured:
        yield Path(configured)
        return

    from crmsync_pipelines.cli.demo_setup import (
        DemoPaths,
        demo_environment,
        ensure_demo_crm,
        patched_environ,
        write_demo_config,
    )
    from crmsync_pipelines.simulator import SimulatorConfig, run_simulator

    base = os.environ.get("CRMSYNC_EXAMPLES_DIR") or tempfile.mkdtemp(prefix="crmsync-examples-")
    paths = DemoPaths.under(Path(base) / "data")
    ensure_demo_crm(paths, accounts=accounts, contacts=contacts)  # kept across runs in the same dir
    write_demo_config(paths)
    # A simulator with the "demo" seed: activities on every channel, so activity sync has work.
    with run_simulator(SimulatorConfig(db_path=paths.simulator_db, seed="demo")) as simulator, \
            patched_environ(demo_environment(paths, base_url=simulator.base_url, token=simulator.token)):
        yield paths.config
