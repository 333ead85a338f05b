"""Adaptive, evolving value tests (Value Compass / GETA): an item bank calibrated by a 2PL model,
adaptive rounds chosen by Fisher information, and checks for newly generated items.

    from valuecsv_ray.adaptive import bank, irt, cat
    abilities, items = irt.calibrate(outcomes)                  # model, item_id, value, conforms
    bank_ = bank.update_calibration(bank.read_bank(path), items, round_=1)
    params = bank.item_parameters(bank_, value)                 # active items on a value: a, b
    states = cat.run_cat(answer, params["a"].to_numpy(), params["b"].to_numpy(), n_models)

The room, one module per step:
- `bank`: the item bank as one Parquet file (BANK_SCHEMA), built from a prompt suite, with
  stable item ids, origin, status and per-value calibration.
- `irt`: the 2PL with priors: joint MAP calibration of abilities and items, standard errors, item
  fit, retire rules; abilities under fixed item parameters (EAP or MAP).
- `cat`: the adaptive test: next batch by information at the current estimate, update, stop rules.
- `checks`: language, length and near-duplicate checks of candidate (generated) items.
- `simulate`: models and items with known parameters, for recovery tests and bench/adaptive_items.py.
The loop (`valuecsv-ray adaptive run` / `report`):
- `outcomes`: items out as a prompt suite, outcomes back from the audit's decisions.
- `generate`: generator requests at the needed difficulty, candidates checked into the bank, admission.
- `config`, `loop`: the rounds (collect -> audit -> calibrate -> admit), resumable per round folder.
- `report`: abilities with intervals, difficulties per round, information curves, static ranking.
No Ray, no torch at import: numpy, scipy, pandas and pyarrow; `loop` runs collect and audit (Ray)
when called.
"""
