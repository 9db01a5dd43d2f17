"""The Dagster code location: every object under ``crmsync_pipelines/defs`` is loaded."""

import warnings
from pathlib import Path

import dagster as dg

# Dagster 1.13 re-creates each sensor with ``owners=None`` whenever it loads a code location
# (and in every step process) and warns about that beta parameter each time, although no
# crmsync sensor sets owners: seven identical warnings per command, none of them actionable.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
