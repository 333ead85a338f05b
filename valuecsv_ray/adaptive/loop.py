"""The adaptive loop: each round asks items near every model's ability, has new ones written, calibrates.

    result = run_loop(load_adaptive_config(None, {"bank": "bank.parquet", "endpoints": "endpoints.yaml",
        "generator": "writer", "registry": "runs/x", "out": "adaptive/run1", "rounds": 2}))
    for summary in result.rounds: print(format_round(summary))

Round 0 (when the bank is not calibrated on a tested value yet) asks every active item on the
values to every model. Each later round:
1. plans, per model and value still running (SE above the target, item budget left), the `batch`
   calibrated items it has not answered that are most informative at its current ability
   (`cat.next_batch`); since everyone answers every item of a round, there are such items only
   when the bank holds calibrated items this run has not asked (an evolved bank, a new model);
2. asks the generator, per value, for `new_items` items at each distinct ability (GETA: items are
   written where the examinees are), with bank items of the nearest difficulty as examples; the
   candidates are checked and enter the bank, rejected with the reason when a check fails;
3. has every model answer the planned items and the new candidates that passed (everyone answers
   every item of a round, so the new ones are calibrated on all models), through `run_collect`;
4. scores the answers with `run_audit`: an outcome is the registry's own decision (adaptive.outcomes);
5. calibrates the 2PL jointly over every outcome so far (rejected items left out), updates the
   bank, and admits each new item only when its fit is usable (generate.admit).
Everything resumes: a round with its done.json is not run again, collect and audit skip the rows
they already wrote, and a round's plan and requests are written once and reused, so a rerun
sends no request twice (adaptive.json records the settings: a rerun must match them, `rounds`
aside). OUT/ holds the endpoints split in two files, bank.parquet (the bank after the last
finished round; the input bank is not changed) and one folder per round:
    round-NN/  ask.jsonl collect/ audit/ outcomes.parquet abilities.parquet items.parquet bank.parquet
               done.json; from round 1 also plan.parquet, generate.jsonl, generate/ (the generator's
               collect), requests.parquet, candidates.parquet, decisions.parquet
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from valuecsv_ray.adaptive import bank as bank_
from valuecsv_ray.adaptive import generate
from valuecsv_ray.adaptive.config import AdaptiveConfig
from valuecsv_ray.adaptive.irt import calibrate
from valuecsv_ray.adaptive.outcomes import OUTCOME_COLUMNS, read_outcomes, write_suite
from valuecsv_ray.adaptive.plan import needs_seed_round, plan_asks, prior, running_tests, seed_plan
from valuecsv_ray.audit.outputs import SCORES
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.settings import changed_settings, flatten, read_yaml, runtime_keys

log = logging.getLogger(__name__)
DONE, RECORD = "done.json", "adaptive.json"
MODELS_YAML, GENERATOR_YAML = "endpoints-models.yaml", "endpoints-generator.yaml"


class LoopError(ValuecsvError, ValueError):
    """An adaptive run that cannot start or go on as configured."""


@dataclass(frozen=True)
class LoopResult:
    out: Path
    bank: bank_.Bank  # after the last finished round
    rounds: list[dict]  # each round's done.json
    abilities: pd.DataFrame  # the last round's: model, value, theta, se, lo, hi, n_responses


def round_dir(out: Path, round_: int) -> Path:
    return Path(out) / f"round-{round_:02d}"


def run_loop(cfg: AdaptiveConfig, audit_settings: dict | None = None,
             on_round: Callable[[dict], None] | None = None) -> LoopResult:
    """Round 0 where needed, then cfg.rounds adaptive rounds into cfg.out (finished rounds are read
    back); `on_round` gets each round's summary as it is done (or read back)."""
    out = Path(cfg.out)
    models = _split_endpoints(cfg, out)
    bank = bank_.read_bank(Path(cfg.bank))
    values = _values(cfg, bank)
    _start_record(cfg, out, values)
    outcomes = pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    abilities = prior(models, values)
    ctx = _Context(cfg, out, models, values, audit_settings or {})
    rounds = []
    first = 0 if needs_seed_round(bank, values) or (round_dir(out, 0) / DONE).is_file() else 1
    for round_ in range(first, cfg.rounds + 1):
        folder = round_dir(out, round_)
        if not (folder / DONE).is_file():
            summary = ctx.run_round(round_, bank, outcomes, abilities)
            if summary is None:
                log.info("round %d: every model's test has stopped and no item is to be written", round_)
                break
        summary = json.loads((folder / DONE).read_text(encoding="utf-8"))
        bank = bank_.read_bank(folder / "bank.parquet")
        outcomes = pd.concat([outcomes, pd.read_parquet(folder / "outcomes.parquet")], ignore_index=True)
        abilities = pd.read_parquet(folder / "abilities.parquet")
        rounds.append(summary)
        if on_round is not None:
            on_round(summary)
    bank_.write_bank(bank, out / "bank.parquet")
    return LoopResult(out, bank, rounds, abilities)


@dataclass(frozen=True)
class _Context:
    cfg: AdaptiveConfig
    out: Path
    models: list[str]
    values: list[str]
    audit_settings: dict

    def run_round(self, round_: int, bank: bank_.Bank, outcomes: pd.DataFrame,
                  abilities: pd.DataFrame) -> dict | None:
        folder = round_dir(self.out, round_)
        folder.mkdir(parents=True, exist_ok=True)
        if round_ == 0:
            plan = seed_plan(bank, self.values)
            new, log_, passed = bank_.make_items([], "generated", self.cfg.generator), None, []
        else:
            tests = running_tests(abilities, outcomes, self.cfg)
            if tests.empty:
                return None
            plan = _cached(folder / "plan.parquet", lambda: plan_asks(bank, outcomes, tests, self.cfg))
            new, log_ = self._generate(folder, round_, bank, tests)
            # add_items refuses a text already in the bank or repeated in `new` (its id exists): no row
            repeated = new["item_id"].isin(bank.items["item_id"]) | new["item_id"].duplicated()
            bank, refused = bank_.add_items(bank, new)
            new = new.assign(refused=np.where(repeated, [dict(refused).get(i) for i in new["item_id"]], None))
            passed = list(new.loc[~repeated & (new["status"] == bank_.ACTIVE), "item_id"])
        asked = sorted(set(plan["item_id"]) | set(passed))
        if not asked:
            return None
        round_outcomes = self._ask(folder, bank, asked)
        pool = pd.concat([outcomes, round_outcomes], ignore_index=True)  # an answer asked again: the first
        pool = pool.drop_duplicates(["model", "item_id", "value"], keep="first")
        rejected = set(bank.items.loc[bank.items["status"] == bank_.REJECTED, "item_id"])
        abilities, items = calibrate(pool[~pool["item_id"].isin(rejected)])
        abilities = abilities.assign(lo=abilities["theta"] - 1.96 * abilities["se"],
                                     hi=abilities["theta"] + 1.96 * abilities["se"], round=round_)
        bank = bank_.update_calibration(bank, items, round_)
        bank, decisions = generate.admit(bank, passed, self.cfg.admit_rules)
        return self._finish(folder, round_, bank, round_outcomes, abilities, items, plan, new, log_,
                            decisions)

    def _generate(self, folder: Path, round_: int, bank: bank_.Bank,
                  tests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The generator's candidates (bank rows, rejected ones with their reason) and its request log."""
        targets = {v: generate.target_difficulties(tests.loc[tests["value"] == v, "theta"], self.cfg.spacing)
                   for v in self.values}
        requests = _cached(folder / "requests.parquet", lambda: generate.plan_requests(
            bank, {v: t for v, t in targets.items() if t}, self.cfg.new_items, self.cfg.examples, round_))
        if requests.empty:
            return bank_.make_items([], "generated", self.cfg.generator), pd.DataFrame()
        suite = generate.write_requests(requests, folder / "generate.jsonl")
        collected = _collect(suite, self.out / GENERATOR_YAML, folder / "generate")
        answers = pq.read_table(collected, columns=["prompt_id", "status", "response"]).to_pandas()
        model = next(e["model"] for e in _entries(self.cfg.endpoints) if e.get("name") == self.cfg.generator)
        return generate.candidates(requests, answers, bank, self.cfg.generator, str(model), round_)

    def _ask(self, folder: Path, bank: bank_.Bank, asked: list[str]) -> pd.DataFrame:
        """Every model's outcomes on the items asked this round (collect, then audit)."""
        items = bank.items.set_index("item_id").loc[asked].reset_index()
        suite = write_suite(items[["item_id", "prompt"]], folder / "ask.jsonl")
        responses = _collect(suite, self.out / MODELS_YAML, folder / "collect")
        scores = _audit(responses, self.cfg.registry, folder / "audit", self.audit_settings)
        targets = dict(zip(items["item_id"], items["values"], strict=True))
        return read_outcomes(responses, scores, targets, self.values)

    def _finish(self, folder: Path, round_: int, bank: bank_.Bank, outcomes: pd.DataFrame,
                abilities: pd.DataFrame, items: pd.DataFrame, plan: pd.DataFrame, new: pd.DataFrame,
                requests_log: pd.DataFrame | None, decisions: pd.DataFrame) -> dict:
        """Write the round's tables, its bank and, last, done.json; returns the summary."""
        outcomes.to_parquet(folder / "outcomes.parquet", index=False)
        abilities.to_parquet(folder / "abilities.parquet", index=False)
        items.to_parquet(folder / "items.parquet", index=False)
        decisions.to_parquet(folder / "decisions.parquet", index=False)
        statuses = bank.items.set_index("item_id")["status"]
        refused = new["refused"] if "refused" in new else pd.Series(None, index=new.index, dtype=object)
        candidates = new.assign(final_status=[f"refused: {r}" if isinstance(r, str) else statuses[i]
                                              for i, r in zip(new["item_id"], refused, strict=True)])
        candidates.drop(columns=["calibration"]).to_parquet(folder / "candidates.parquet", index=False)
        bank_.write_bank(bank, folder / "bank.parquet")
        per_item = decisions.drop_duplicates("item_id")["admitted"].astype(bool)
        summary = {
            "round": round_, "items_asked": int(outcomes["item_id"].nunique()),
            "answers": int(len(outcomes[["model", "item_id"]].drop_duplicates())),
            "asked_by_plan": int(plan["item_id"].nunique()), "candidates": int(len(new)),
            "rejected_by_checks": int((new["status"] == bank_.REJECTED).sum()),
            "admitted": int(per_item.sum()), "rejected_by_fit": int((~per_item).sum()),
            "generator_requests": 0 if requests_log is None else int(len(requests_log)),
            "abilities": abilities[["model", "value", "theta", "se", "lo", "hi", "n_responses"]]
            .to_dict("records"),
        }
        summary["rejected"] = summary["rejected_by_checks"] + summary["rejected_by_fit"]
        (folder / DONE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        return summary


def _values(cfg: AdaptiveConfig, bank: bank_.Bank) -> list[str]:
    from valuecsv_ray.registry.manifest import load_registry

    registry_values = load_registry(cfg.registry).taxonomy.ids
    targeted = sorted({v for t in bank.items["values"] for v in t}, key=list(bank.taxonomy.ids).index)
    values = list(cfg.values) or targeted or list(registry_values)
    missing = [v for v in values if v not in registry_values or v not in bank.taxonomy.ids]
    if missing:
        raise LoopError(f"value(s) {', '.join(missing)} are not in both the registry {cfg.registry} "
                        f"({', '.join(registry_values)}) and the bank's taxonomy")
    return values


def _start_record(cfg: AdaptiveConfig, out: Path, values: list[str]) -> None:
    """OUT/adaptive.json, or check that a resumed run has the settings it started with (rounds may grow)."""
    record = {**flatten(cfg), "values": values}
    path = out / RECORD
    if not path.is_file():
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    changed = changed_settings(old, record, runtime_keys(AdaptiveConfig))
    if changed:
        raise LoopError(f"{out} holds an adaptive run started with other settings ({', '.join(changed)} "
                        f"differ from {path}): resume with the same settings, or choose a new --out folder")


def _entries(path: str) -> list[dict]:
    entries = read_yaml(path).get("endpoints")
    if not isinstance(entries, list):
        raise LoopError(f"{path}: expected a list under `endpoints:`")
    return entries


def _split_endpoints(cfg: AdaptiveConfig, out: Path) -> list[str]:
    """OUT/endpoints-generator.yaml (the generator) and OUT/endpoints-models.yaml (the rest); the
    names of the models under test."""
    entries = _entries(cfg.endpoints)
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    if cfg.generator not in names:
        raise LoopError(f"generator {cfg.generator!r} is not an endpoint of {cfg.endpoints}; "
                        f"available: {', '.join(map(str, names))}")
    tested = [e for e in entries if e.get("name") != cfg.generator]
    if not tested:
        raise LoopError(f"{cfg.endpoints} has no endpoint besides the generator to test")
    out.mkdir(parents=True, exist_ok=True)
    for name, chosen in ((GENERATOR_YAML, [e for e in entries if e.get("name") == cfg.generator]),
                         (MODELS_YAML, tested)):
        (out / name).write_text(yaml.safe_dump({"endpoints": chosen}, allow_unicode=True, sort_keys=False),
                                encoding="utf-8")
    return [str(e["name"]) for e in tested]


def _cached(path: Path, make) -> pd.DataFrame:
    """A round's plan, made once: read back when written before (so a rerun asks the same)."""
    if path.is_file():
        return pd.read_parquet(path)
    frame = make()
    frame.to_parquet(path, index=False)
    return frame


def _collect(suite: Path, endpoints: Path, out: Path) -> str:
    from valuecsv_ray.collect.config import load_collect_config
    from valuecsv_ray.collect.pipeline import run_collect

    cfg = load_collect_config(None, {"suites": [str(suite)], "endpoints": str(endpoints), "out": str(out)})
    return str(run_collect(cfg, progress=False).responses_dir)


def _audit(responses: str, registry: str, out: Path, settings: dict) -> str:
    from valuecsv_ray.audit.pipeline import run_audit
    from valuecsv_ray.config import load_audit_config

    cfg = load_audit_config(None, {**settings, "inputs": [responses], "registry": registry, "out": str(out)})
    return str(Path(run_audit(cfg).out) / SCORES)


def format_round(summary: dict) -> str:
    """A round's lines: items asked, admitted / rejected, each model's ability per value."""
    head = (f"round {summary['round']}: {summary['items_asked']} items asked ({summary['asked_by_plan']} "
            f"chosen from the bank, {summary['answers']} answers); "
            f"generator: {summary['candidates']} candidates, {summary['admitted']} admitted, "
            f"{summary['rejected']} rejected ({summary['rejected_by_checks']} by checks, "
            f"{summary['rejected_by_fit']} by fit)")
    lines = [head]
    for row in sorted(summary["abilities"], key=lambda r: (r["value"], -r["theta"])):
        lines.append(f"  {row['value']:<20} {row['model']:<20} theta {row['theta']:+.2f}  "
                     f"95% [{row['lo']:+.2f}, {row['hi']:+.2f}]  se {row['se']:.2f}  "
                     f"answers {int(row['n_responses'])}")
    return "\n".join(lines)


def ranks(abilities: pd.DataFrame) -> pd.DataFrame:
    """Rank of each model per value (1 = highest ability)."""
    frame = abilities.copy()
    frame["rank"] = frame.groupby("value")["theta"].rank(ascending=False, method="min").astype(np.int64)
    return frame
