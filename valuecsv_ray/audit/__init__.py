"""The audit of LLM-output corpora: paths -> readers -> pipeline (Ray Data) -> outputs -> stats -> report.

    from valuecsv_ray.audit.pipeline import run_audit
    result = run_audit(load_audit_config(overrides={"inputs": [...], "registry": REG, "out": OUT}))
"""
