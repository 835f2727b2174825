"""The jobs tests' world (the example trust synced) for the scaled mode's tests too."""

from tests.jobs.conftest import config, world

__all__ = ["config", "world"]
