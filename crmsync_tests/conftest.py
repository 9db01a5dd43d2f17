"""Shared fixtures; each area keeps its fixtures in ``crmsync_tests/fixtures/<area>.py``."""

pytest_plugins = [
    "crmsync_tests.fixtures.simulator",
    "crmsync_tests.fixtures.crm",
    "crmsync_tests.fixtures.pipeline",
    "crmsync_tests.fixtures.engine",
    "crmsync_tests.fixtures.raynet",
    "crmsync_tests.fixtures.hubspot",
]
