"""Connect to Ray: the one place train, audit and serve start or join a Ray instance.

    connect()                      # RAY_ADDRESS, a running `ray start` cluster, or a new local one
    connect("ray://head:10001")    # a given address
    worker_logging()               # in an actor or replica: this package's INFO lines in its log
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def worker_logging(level: int = logging.INFO) -> None:
    """Let this package's log lines at `level` through in a Ray worker (an audit actor, a Serve
    replica), where the root logger has no handler and passes only warnings: the load phases and
    settings an engine logs then reach the worker's log file (and the driver's console). Where the
    root logger already handles `level` (a job's ray.LoggingConfig), it only sets the level."""
    package = logging.getLogger("valuecsv_ray")
    package.setLevel(level)
    root = logging.getLogger()
    if root.handlers and root.getEffectiveLevel() <= level:
        return
    if not any(getattr(h, "_valuecsv_worker", False) for h in package.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._valuecsv_worker = True  # one handler, however often this is called
        package.addHandler(handler)
    package.propagate = False
