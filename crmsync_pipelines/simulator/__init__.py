"""A faithful fake of the Daktela Contact Centre V6 REST API, for demos, tests and benchmarks.

It serves the real wire protocol over HTTP on loopback (uvicorn in a background thread), so
clients are tested exactly as they run against a real instance; see docs/simulator.md.
"""

from crmsync_pipelines.simulator.config import Fault, RequestRecord, SimulatorConfig
from crmsync_pipelines.simulator.server import SimulatorHandle, run_simulator

__all__ = ["Fault", "RequestRecord", "SimulatorConfig", "SimulatorHandle", "run_simulator"]
