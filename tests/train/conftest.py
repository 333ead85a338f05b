"""Fixtures for the Ray Train tests: one real local Ray instance for the module."""

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance (2 CPUs, no dashboard), started once."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 2**20,
             log_to_driver=False)
    yield ray
    ray.shutdown()
