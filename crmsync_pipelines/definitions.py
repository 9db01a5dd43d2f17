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
# Checks are partitioned like their assets on purpose (defs/check_events.py): without it the
# UI shows every check of a partition as skipped. Dagster flags that as a preview feature.
warnings.filterwarnings(
    "ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
