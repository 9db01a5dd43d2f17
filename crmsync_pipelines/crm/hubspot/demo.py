"""The HubSpot side of ``crmsync demo --crm hubspot``: the simulator, its config and environment.

The HubSpot simulator keeps its portal in ``<data dir>/hubspot-simulator.json`` between runs,
so a second demo run finds the activities the first one wrote and writes nothing, like the SQL
demo. The generated ``sync.yaml`` is ``mappings/hubspot/sync.yaml`` with its paths pointed into
the data directory; the ``HUBSPOT_*`` variables it reads come from the running simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from crmsync_pipelines.crm.hubspot.simulator import HubSpotSimConfig, HubSpotSimHandle, run_hubspot_simulator
from crmsync_pipelines.crm.sim_state import demo_state_checked

if TYPE_CHECKING:
    from crmsync_pipelines.cli.demo_setup import DemoPaths

#: The shipped HubSpot configuration the demo config is derived from.
HUBSPOT_TEMPLATE = Path(__file__).resolve().parents[3] / "mappings" / "hubspot" / "sync.yaml"
STATE_FILE = "hubspot-simulator.json"


def hubspot_environment(sim: HubSpotSimHandle) -> dict[str, str]:
    """The variables ``mappings/hubspot/sync.yaml`` reads, pointing at ``sim`` (its fake token, not a secret)."""
    return {"HUBSPOT_ACCESS_TOKEN": sim.token, "HUBSPOT_BASE_URL": sim.base_url}


def write_hubspot_demo_config(paths: DemoPaths) -> Path:
    """``paths.config`` from the HubSpot template (its ``crm:`` section kept whole, ``${VAR}`` unresolved)."""
    from crmsync_pipelines.cli.demo_setup import write_demo_config

    crm = yaml.safe_load(HUBSPOT_TEMPLATE.read_text(encoding="utf-8"))["crm"]
    return write_demo_config(paths, template=HUBSPOT_TEMPLATE, crm=crm)


@contextmanager
def hubspot_demo(paths: DemoPaths) -> Iterator[dict[str, str]]:
    """Run the HubSpot simulator (demo portal, state kept in the data directory), write the config, yield the env."""
    running = run_hubspot_simulator(HubSpotSimConfig(seed="demo", state_path=paths.data_dir / STATE_FILE))
    with ExitStack() as stack:
        sim = stack.enter_context(demo_state_checked(running))
        write_hubspot_demo_config(paths)
        yield hubspot_environment(sim)
