"""The eval room: LLMs evaluated end to end, collect -> audit -> statistics -> leaderboard -> report.

    from valuecsv_ray.eval.config import load_eval_config
    from valuecsv_ray.eval.pipeline import run_eval
    result = run_eval(load_eval_config("configs/eval/stub.yaml", {"out": "eval/run1"}))

config: the eval's settings (the collect settings held, plus the registry, profiles, resamples);
layout: the folders of an evaluation and how other commands find them; pipeline: the steps;
report: the audit report joined with the leaderboard's section. Nothing here is imported by
the stages it drives, and the report step imports no Ray (`valuecsv-ray report` stays fast).
"""
