"""The registry room: trained evaluators as one folder per job, described by its manifest.

    from valuecsv_ray.registry import load_registry
    registry = load_registry("runs/valuecsv")   # or "s3://bucket/runs/x": copied once, then checked

manifest: the folder layout, writing it as a training job goes, loading and refusing an
incomplete or altered folder, the metrics table. store: checksums, the per-node verification
cache, and copying a registry to and from object storage (paths and URIs come from `storage`).
"""

from valuecsv_ray.registry.manifest import (
    Registry,
    RegistryError,
    format_metrics_table,
    load_registry,
    metrics_table,
    taxonomy_of,
)

__all__ = ["Registry", "RegistryError", "format_metrics_table", "load_registry", "metrics_table",
           "taxonomy_of"]
