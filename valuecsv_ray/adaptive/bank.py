"""The item bank: every test item, where it came from, and its calibration per value, as one Parquet file.

    bank, skipped = build_bank("quest100", load_taxonomy(), data_dir=Path("data"))
    write_bank(bank, Path("bank.parquet"))
    bank = read_bank(Path("bank.parquet"))            # Bank(items=DataFrame, taxonomy=Taxonomy)
    bank = update_calibration(bank, items, round_=1)  # items: irt.calibrate's item table
    params = item_parameters(bank, "patriotism")      # active items on a value: item_id, a, b

One row per item (BANK_SCHEMA). Calibration is a list<struct> column, one struct per value the
item has been calibrated on, rather than a long side table: the bank stays one self-contained
file with one row per item, pandas reads it as a list of dicts per row, and DuckDB reads it
directly (`SELECT item_id, UNNEST(calibration, recursive := true) FROM 'bank.parquet'`);
`calibration_long` gives the long table. The taxonomy the value ids come from is stored in the
file's schema metadata, so a bank describes itself. No Ray, no torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.collect.suites import BUILTINS, load_suite
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.storage import write_table
from valuecsv_ray.taxonomy import Taxonomy

ACTIVE, RETIRED, REJECTED = "active", "retired", "rejected"
STATUSES = (ACTIVE, RETIRED, REJECTED)
ORIGINS = ("seed", "generated", "user")
TAXONOMY_KEY = b"valuecsv.taxonomy"  # schema metadata: the taxonomy as JSON

CALIBRATION_TYPE = pa.struct(
    [
        pa.field("value", pa.string(), nullable=False),  # a value id of the bank's taxonomy
        pa.field("a", pa.float64()),  # discrimination (2PL MAP)
        pa.field("b", pa.float64()),  # difficulty, on the models' ability scale
        pa.field("se_a", pa.float64()),  # standard errors (Fisher information with the priors)
        pa.field("se_b", pa.float64()),
        pa.field("n_responses", pa.int32()),  # models whose answer to the item was scored on this value
        pa.field("n_conform", pa.int32()),  # of them, how many conformed
        pa.field("infit", pa.float64()),  # information-weighted mean-square residual (~1 fits)
        pa.field("outfit", pa.float64()),  # unweighted mean-square residual (~1 fits)
        pa.field("retired", pa.string()),  # why it no longer separates models on this value; "" if it does
        pa.field("calibrated_round", pa.int32()),  # the round of this calibration
    ]
)

BANK_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),  # "i" + sha1 of the normalised prompt, 16 hex
        pa.field("prompt", pa.string(), nullable=False),  # the user message put to the LLM
        pa.field("values", pa.list_(pa.string()), nullable=False),  # value ids targeted; empty = all
        pa.field("origin", pa.string(), nullable=False),  # one of ORIGINS: seed suite, generated, user file
        pa.field("source", pa.string(), nullable=False),  # suite name, or the generator's endpoint name
        pa.field("source_id", pa.string()),  # the prompt_id in its suite (null for generated items)
        pa.field("parents", pa.list_(pa.string()), nullable=False),  # item ids shown to the generator
        pa.field("generator", pa.string()),  # generator model (null unless generated)
        pa.field("entered_round", pa.int32(), nullable=False),  # round it entered the bank (0 = seed)
        pa.field("status", pa.string(), nullable=False),  # one of STATUSES
        pa.field("status_reason", pa.string()),  # why retired or rejected (null when active)
        pa.field("meta", pa.string(), nullable=False),  # JSON object of the suite's other fields
        pa.field("calibration", pa.list_(CALIBRATION_TYPE), nullable=False),  # one entry per calibrated value
    ]
)
CALIBRATION_FIELDS = tuple(f.name for f in CALIBRATION_TYPE)


class BankError(ValuecsvError, ValueError):
    """An item bank that cannot be read or changed as asked; the message names the file or items."""


@dataclass(frozen=True)
class Bank:
    """The items (BANK_SCHEMA columns; list columns hold Python lists) and the taxonomy of their values."""

    items: pd.DataFrame
    taxonomy: Taxonomy


def normalise_prompt(text: str) -> str:
    """NFKC, trimmed, runs of whitespace as one space: the text an item id is derived from."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def item_id(prompt: str) -> str:
    """A stable id of a prompt: equal for texts that differ only in width forms or spacing."""
    return "i" + hashlib.sha1(normalise_prompt(prompt).encode("utf-8")).hexdigest()[:16]


def make_items(prompts: Sequence[str], origin: str, source: str, entered_round: int = 0, *,
               values: Sequence[str] = (), parents: Sequence[str] = (), generator: str | None = None,
               source_ids: Sequence[str | None] | None = None, metas: Sequence[str] | None = None,
               reasons: Sequence[str | None] | None = None) -> pd.DataFrame:
    """Bank rows for new prompts, uncalibrated; a prompt with a reason enters as rejected."""
    if origin not in ORIGINS:
        raise BankError(f"unknown origin {origin!r}; available: {', '.join(ORIGINS)}")
    n = len(prompts)
    reasons = list(reasons) if reasons is not None else [None] * n
    source_ids = list(source_ids) if source_ids is not None else [None] * n
    metas = list(metas) if metas is not None else ["{}"] * n
    return _items_frame([
        {"item_id": item_id(p), "prompt": normalise_prompt(p), "values": list(values), "origin": origin,
         "source": source, "source_id": sid, "parents": list(parents), "generator": generator,
         "entered_round": entered_round, "status": REJECTED if reason else ACTIVE,
         "status_reason": reason, "meta": meta, "calibration": []}
        for p, sid, meta, reason in zip(prompts, source_ids, metas, reasons, strict=True)
    ])


def build_bank(spec: str, taxonomy: Taxonomy, data_dir: Path | None = None,
               values: Sequence[str] = ()) -> tuple[Bank, list[tuple[str, str]]]:
    """A bank of a prompt suite's prompts (see `collect.suites.load_suite`) and the rows left out as
    (where, reason): the suite's skipped rows and prompts whose text repeats an earlier one."""
    values = _check_values(values, taxonomy)
    prompts, suite_skipped = load_suite(spec, data_dir=data_dir)
    origin = "seed" if spec.partition("=")[0] in BUILTINS else "user"
    skipped = [(f"{spec}: row {row}", reason) for row, reason in suite_skipped]
    items = make_items(list(prompts["prompt"]), origin, str(prompts["suite"].iloc[0]), 0, values=values,
                       source_ids=list(prompts["prompt_id"]), metas=list(prompts["meta"]))
    repeated = items["item_id"].duplicated()
    for _, row in items[repeated].iterrows():
        first = items.loc[items["item_id"] == row["item_id"], "source_id"].iloc[0]
        skipped.append((f"{spec}: {row['source_id']}", f"same text as {first} (item {row['item_id']})"))
    return Bank(items[~repeated].reset_index(drop=True), taxonomy), skipped


def add_items(bank: Bank, new: pd.DataFrame) -> tuple[Bank, list[tuple[str, str]]]:
    """The bank with `new` rows (from `make_items`) appended, and those refused as (item_id, reason):
    an id already in the bank (the same normalised text) or repeated within `new`."""
    for targets in new["values"]:
        _check_values(targets, bank.taxonomy)
    seen = set(bank.items["item_id"])
    refused, keep = [], []
    for i, row in new.iterrows():
        if row["item_id"] in seen:
            refused.append((row["item_id"], f"already in the bank: {row['prompt'][:40]!r}"))
        else:
            seen.add(row["item_id"])
            keep.append(i)
    items = pd.concat([bank.items, new.loc[keep, BANK_SCHEMA.names]], ignore_index=True)
    return Bank(items, bank.taxonomy), refused


def update_calibration(bank: Bank, calibrated: pd.DataFrame, round_: int) -> Bank:
    """The bank with each (item_id, value) row of `calibrated` (irt.calibrate's item table) replacing
    that item's calibration on that value; an item retired on every value it targets is retired."""
    unknown = sorted(set(calibrated["item_id"]) - set(bank.items["item_id"]))
    if unknown:
        raise BankError(f"{len(unknown)} calibrated items are not in the bank, e.g. {unknown[:3]}")
    _check_values(sorted(set(calibrated["value"])), bank.taxonomy)
    fields = [f for f in CALIBRATION_FIELDS if f not in ("value", "calibrated_round")]
    fresh: dict[str, dict[str, dict]] = {}
    for row in calibrated.to_dict("records"):
        entry = {"value": row["value"], **{f: _plain(row.get(f)) for f in fields},
                 "calibrated_round": round_}
        fresh.setdefault(row["item_id"], {})[row["value"]] = entry
    items = bank.items.copy()
    for pos, row in items.iterrows():
        if row["item_id"] not in fresh:
            continue
        merged = {c["value"]: c for c in row["calibration"]} | fresh[row["item_id"]]
        calibration = [merged[v] for v in bank.taxonomy.ids if v in merged]
        items.at[pos, "calibration"] = calibration
        if row["status"] != REJECTED:
            reason = _retire_reason(calibration, list(row["values"]) or list(bank.taxonomy.ids))
            status = (RETIRED, reason) if reason else (ACTIVE, None)
            items.at[pos, "status"], items.at[pos, "status_reason"] = status
    return Bank(items, bank.taxonomy)


def calibration_long(bank: Bank) -> pd.DataFrame:
    """One row per (item, calibrated value): item_id, status and the CALIBRATION_FIELDS."""
    records = bank.items[["item_id", "status", "calibration"]].to_dict("records")
    rows = [{"item_id": r["item_id"], "status": r["status"], **c} for r in records for c in r["calibration"]]
    return pd.DataFrame(rows, columns=["item_id", "status", *CALIBRATION_FIELDS])


def item_parameters(bank: Bank, value: str) -> pd.DataFrame:
    """The items an adaptive test of `value` may ask: active, targeting it, calibrated on it and not
    retired on it; columns item_id, prompt, a, b."""
    _check_values([value], bank.taxonomy)
    long = calibration_long(bank)
    long = long[(long["value"] == value) & (long["status"] == ACTIVE) & (long["retired"].fillna("") == "")]
    targets = bank.items.set_index("item_id")["values"]
    targeted = [not targets[i] or value in targets[i] for i in long["item_id"]]
    long = long.loc[np.asarray(targeted, dtype=bool)]  # a boolean mask: an empty list would select columns
    prompts = bank.items.set_index("item_id")["prompt"]
    long = long.assign(prompt=prompts[long["item_id"]].to_numpy())
    return long[["item_id", "prompt", "a", "b"]].reset_index(drop=True)


def write_bank(bank: Bank, path: Path) -> Path:
    """Write the bank with its taxonomy, whole or not at all (storage.write_table)."""
    table = pa.Table.from_pandas(bank.items[BANK_SCHEMA.names], schema=BANK_SCHEMA, preserve_index=False)
    duplicated = bank.items["item_id"].duplicated()
    if duplicated.any():
        raise BankError(f"{path}: item ids repeat: {sorted(set(bank.items['item_id'][duplicated]))[:3]}")
    table = table.replace_schema_metadata({TAXONOMY_KEY: json.dumps(bank.taxonomy.to_dict()).encode()})
    path = Path(path)
    write_table(table, path)
    return path


def read_bank(path: Path) -> Bank:
    """A bank written by `write_bank`; refuses a file without the bank's columns or taxonomy."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise BankError(f"cannot read item bank {path}: {e}; make one with `valuecsv-ray items init`") from e
    missing = [n for n in BANK_SCHEMA.names if n not in table.column_names]
    meta = table.schema.metadata or {}
    if missing or TAXONOMY_KEY not in meta:
        what = f"the column(s) {', '.join(missing)}" if missing else "its taxonomy (schema metadata)"
        raise BankError(f"{path} is not an item bank: it lacks {what}; "
                        "make one with `valuecsv-ray items init`")
    taxonomy = Taxonomy.from_dict(json.loads(meta[TAXONOMY_KEY]), where=f"{path} taxonomy")
    return Bank(_items_frame(table.select(BANK_SCHEMA.names).cast(BANK_SCHEMA).to_pylist()), taxonomy)


def _items_frame(records: list[dict]) -> pd.DataFrame:
    """Bank rows as a frame, list columns as Python lists (object columns also when empty, so an
    empty frame still converts to BANK_SCHEMA)."""
    if not records:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in BANK_SCHEMA.names})
    return pd.DataFrame(records, columns=BANK_SCHEMA.names)


def _check_values(values: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    unknown = [v for v in values if v not in taxonomy.ids]
    if unknown:
        raise BankError(f"unknown value id(s) {', '.join(unknown)} for taxonomy {taxonomy.name!r}; "
                        f"expected some of: {', '.join(taxonomy.ids)}")
    return list(values)


def _retire_reason(calibration: list[dict], targets: list[str]) -> str:
    by_value = {c["value"]: c.get("retired") or "" for c in calibration}
    if all(by_value.get(v) for v in targets):
        return "; ".join(by_value[v] for v in targets)
    return ""


def _plain(value: object) -> object:
    """numpy scalars as Python values, NaN as None (Parquet null)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value
