"""Items out as a prompt suite, outcomes back from the audit: the adaptive loop's seam to collect -> audit.

    write_suite(items, Path("round-01/ask.jsonl"))        # items: item_id, prompt
    # valuecsv-ray collect --suite round-01/ask.jsonl ...; valuecsv-ray audit ... (adaptive.loop runs both)
    outcomes = read_outcomes(responses_dir, scores_dir, targets, ["patriotism"])
    # model, item_id, value, prob, conforms (1 when prob >= the value's threshold), n_samples

An item goes out as the prompt `adaptive:<item_id>` of a JSONL suite, so every collected row (and
the audit row scored from it, joined by the row id) maps back to (model, item_id). An answer
conforms on a value when the registry's calibrated probability is at or above that value's
threshold: the audit's own label column (`y_<value>`), not a second scorer. Answers that did not
come back are in the audit's quarantine and have no outcome. Several samples of one (model,
item) are pooled: the mean probability, and conforms when at least half of the samples do.
No Ray, no torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from valuecsv_ray.audit.schema import label_column, prob_column
from valuecsv_ray.errors import ValuecsvError

PREFIX = "adaptive"  # prompt ids are adaptive:<item_id>
OUTCOME_COLUMNS = ("model", "item_id", "value", "prob", "conforms", "n_samples")


class OutcomeError(ValuecsvError, ValueError):
    """Collected or audited rows that do not map back to the items asked."""


def prompt_id(item_id: str) -> str:
    return f"{PREFIX}:{item_id}"


def item_of(prompt_id_: str) -> str:
    """The item id of an `adaptive:<item_id>` prompt id."""
    prefix, _, item = prompt_id_.partition(":")
    if prefix != PREFIX or not item:
        raise OutcomeError(f"prompt id {prompt_id_!r} is not an adaptive item ({PREFIX}:<item_id>)")
    return item


def write_suite(items: pd.DataFrame, path: Path) -> Path:
    """The items (columns item_id, prompt) as a JSONL prompt suite, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"prompt_id": prompt_id(i), "prompt": p}, ensure_ascii=False)
             for i, p in zip(items["item_id"], items["prompt"], strict=True)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path


def read_outcomes(responses_dir: Path | str, scores_dir: Path | str, targets: Mapping[str, Sequence[str]],
                  values: Sequence[str]) -> pd.DataFrame:
    """OUTCOME_COLUMNS of every scored answer, on each value of `values` its item targets
    (`targets[item_id]`, empty: every value)."""
    responses = pq.read_table(responses_dir, columns=["id", "prompt_id", "sample"]).to_pandas()
    wanted = ["row_id", "model"] + [c for v in values for c in (prob_column(v), label_column(v))]
    try:
        scores = pq.read_table(scores_dir, columns=wanted).to_pandas()
    except (KeyError, ValueError) as e:  # pyarrow names the missing column
        raise OutcomeError(f"{scores_dir}: not the scores of a registry with the values "
                           f"{', '.join(values)} ({e})") from e
    rows = scores.merge(responses, left_on="row_id", right_on="id", how="left", validate="one_to_one")
    if rows["prompt_id"].isna().any():
        raise OutcomeError(f"{scores_dir}: {int(rows['prompt_id'].isna().sum())} scored rows are not rows of "
                           f"{responses_dir}; audit the collected responses of the same round")
    rows["item_id"] = [item_of(p) for p in rows["prompt_id"]]
    unknown = sorted(set(rows["item_id"]) - set(targets))
    if unknown:
        raise OutcomeError(f"{len(unknown)} answered items are not in the bank, e.g. {unknown[:3]}")
    long = []
    for value in values:
        on = rows[[not targets[i] or value in targets[i] for i in rows["item_id"]]]
        long.append(pd.DataFrame({"model": on["model"], "item_id": on["item_id"], "value": value,
                                  "prob": on[prob_column(value)].astype(float),
                                  "label": on[label_column(value)].astype(float)}))
    frame = pd.concat(long, ignore_index=True)
    pooled = frame.groupby(["model", "item_id", "value"], sort=True).agg(
        prob=("prob", "mean"), share=("label", "mean"), n_samples=("prob", "size")).reset_index()
    pooled["conforms"] = (pooled["share"] >= 0.5).astype(int)
    return pooled[list(OUTCOME_COLUMNS)]
