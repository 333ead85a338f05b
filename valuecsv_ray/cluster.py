"""Connect to Ray: the one place train, audit and serve start or join a Ray instance.

    connect()                      # RAY_ADDRESS, a running `ray start` cluster, or a new local one
    connect("ray://head:10001")    # a given address
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def connect(address: str | None = None, **init_kwargs) -> None:
    """Join the Ray instance at `address` (default: RAY_ADDRESS, a running cluster, or a new local
    one); does nothing when this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=address, **init_kwargs)
    log.info("connected to Ray: %s", ray.get_runtime_context().gcs_address)
