"""Scoring: `core` (windows, batching, probabilities) and `engine` (a registry as one ensemble);
`client` queries a served ensemble over HTTP.

    from valuecsv_ray.scoring.engine import Ensemble
    Ensemble.from_registry("runs/quickstart").score(["一段文本"]).probs
"""
