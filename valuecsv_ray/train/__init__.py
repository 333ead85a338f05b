"""Training: a plain-torch loop (`loop`), metrics, the Ray Train worker and the job runner.

    from valuecsv_ray.train.runner import train_all
    registry_dir = train_all(cfg)
"""
