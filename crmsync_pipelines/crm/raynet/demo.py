"""The Raynet side of ``crmsync demo --crm raynet``: the simulator, its config and environment.

The Raynet simulator keeps its data in ``<data dir>/raynet-simulator.json`` between runs, so a
second demo run finds the activities the first one wrote and writes nothing, like the SQL demo.
The generated ``sync.yaml`` is ``mappings/raynet/sync.yaml`` with its paths pointed into the
data directory; the ``RAYNET_*`` variables it reads come from the running simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from crmsync_pipelines.crm.raynet.simulator import RaynetSimConfig, RaynetSimulatorHandle, run_raynet_simulator
from crmsync_pipelines.crm.sim_state import demo_state_checked

if TYPE_CHECKING:
    from crmsync_pipelines.cli.demo_setup import DemoPaths

#: The shipped Raynet configuration the demo config is derived from.
RAYNET_TEMPLATE = Path(__file__).resolve().parents[3] / "mappings" / "raynet" / "sync.yaml"
STATE_FILE = "raynet-simulator.json"


def raynet_environment(sim: RaynetSimulatorHandle) -> dict[str, str]:
    """The variables ``mappings/raynet/sync.yaml`` reads, pointing at ``sim`` (its fake key, not a secret)."""
    return {"RAYNET_INSTANCE": sim.config.instance_name, "RAYNET_USERNAME": sim.config.username,
            "RAYNET_API_KEY": sim.config.api_key, "RAYNET_BASE_URL": sim.api_url,
            "RAYNET_OWNER_ID": str(sim.user_ids[-1])}


def write_raynet_demo_config(paths: DemoPaths) -> Path:
    """``paths.config`` from the Raynet template (its ``crm:`` section kept whole, ``${VAR}`` unresolved)."""
    from crmsync_pipelines.cli.demo_setup import write_demo_config

    crm = yaml.safe_load(RAYNET_TEMPLATE.read_text(encoding="utf-8"))["crm"]
    return write_demo_config(paths, template=RAYNET_TEMPLATE, crm=crm)


@contextmanager
def raynet_demo(paths: DemoPaths) -> Iterator[dict[str, str]]:
    """Run the Raynet simulator (state kept in the data directory), write the config, yield the env."""
    state = paths.data_dir / STATE_FILE
    with ExitStack() as stack:
        sim = stack.enter_context(demo_state_checked(run_raynet_simulator(RaynetSimConfig(state_path=state))))
        write_raynet_demo_config(paths)
        yield raynet_environment(sim)
