"""Load CValues comparison pairs (a question, a better and a worse reply) in three pair schemas.

    from valuecsv_ray.cvalues.pairs import load_pairs
    loaded = load_pairs("cvalues_responsibility_mc.jsonl")  # loaded.pairs, loaded.quarantine

Pair schemas, told apart by their columns (in any file format of `valuecsv_ray.tables`):
- "mc": upstream's `cvalues_responsibility_mc.jsonl` (X-PLUG/CValues): `prompt`, `label` and
  `meta_info` {question, pos_resp, neg_resp, domain_zh, difficulty_level}. Each pair comes twice
  (both orders); the rows are merged into one pair by (question, pos_resp, neg_resp).
- "comparison": CValues-Comparison: `prompt`, `pos_resp`, `neg_resp`, `pos_type`, `neg_type`.
- "user": `question` (or `prompt`), `pos_resp`, `neg_resp`, optional `domain`, `difficulty`, `pair_id`.
Rows with a missing or empty question or reply, or the same text for both replies, go to the
quarantine with a reason, so rows in = pairs + merged duplicates + quarantined rows. A file that
cannot be read as its format (bad JSON, a missing column, a bad label) raises PairsError naming the
file, row and column. No torch, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from valuecsv_ray.cvalues.parse import CHOICES
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.tables import FORMATS, TableError, read_file, undecodable

PAIR_COLUMNS = ("pair_id", "question", "pos_resp", "neg_resp", "domain", "difficulty", "source_format")
QUARANTINE_COLUMNS = ("source", "row", "reason", "raw")  # row: as tables.Format.row_number counts it
PAIR_SCHEMAS = ("mc", "comparison", "user")
UNKNOWN = "unknown"  # domain or difficulty when the file has none
DEMO = "demo"  # the CLI's name for the shipped demo pairs
_TEXTS = ("question", "pos_resp", "neg_resp")
_REQUIRED = {"mc": ("label", "meta_info"), "comparison": ("prompt", "pos_resp", "neg_resp"),
             "user": ("pos_resp", "neg_resp")}  # "user" also needs question or prompt


class PairsError(ValuecsvError, ValueError):
    """A pairs file cannot be read; the message names the file, row and column and how to fix it."""


class LoadedPairs(NamedTuple):
    """What load_pairs read: `rows_in` = len(pairs) + duplicates + len(quarantine)."""

    pairs: pd.DataFrame  # PAIR_COLUMNS, one row per pair
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS, one row per bad input row
    rows_in: int  # records read from the file
    duplicates: int  # rows merged into an earlier pair (mc rows come in both orders)
    source_format: str  # one of PAIR_SCHEMAS


def demo_pairs_path() -> Path:
    """The demo pairs shipped with the package (written for this project, not copied from CValues)."""
    return Path(str(resources.files("valuecsv_ray") / "resources" / "cvalues_demo_pairs.jsonl"))


def pair_id_of(question: str, pos_resp: str, neg_resp: str) -> str:
    """A stable short id: the first 12 hex digits of sha256 over the three texts."""
    digest = hashlib.sha256("\x1f".join((question, pos_resp, neg_resp)).encode("utf-8")).hexdigest()
    return digest[:12]


def load_pairs(path: str | Path, fmt: str = "auto") -> LoadedPairs:
    """Read a pairs file (any tables format) of format `fmt` (one of PAIR_SCHEMAS, or "auto" to detect)."""
    path = Path(path)
    if fmt != "auto" and fmt not in PAIR_SCHEMAS:
        raise PairsError(f"unknown pairs format {fmt!r}; use auto or one of {', '.join(PAIR_SCHEMAS)}")
    records, unit = read_records(path)
    columns = sorted({key for _, rec in records for key in rec if isinstance(key, str)})
    fmt = detect_schema(path, columns) if fmt == "auto" else _check_columns(path, columns, fmt)
    pairs: dict[str, dict[str, Any]] = {}
    quarantine: list[dict[str, Any]] = []
    duplicates = 0
    for row, rec in records:
        where = f"{path}, {unit} {row}"
        pair, reason = _to_pair(rec, fmt, where)
        if reason is None and pair["pair_id"] in pairs:
            earlier = pairs[pair["pair_id"]]
            if all(earlier[k] == pair[k] for k in _TEXTS):
                duplicates += 1
                continue
            reason = f"pair_id {pair['pair_id']!r} already used by an earlier row with other texts"
        if reason is not None:
            quarantine.append({"source": str(path), "row": row, "reason": reason, "raw": _raw(rec)})
        else:
            pairs[pair["pair_id"]] = pair
    return LoadedPairs(pd.DataFrame(list(pairs.values()), columns=list(PAIR_COLUMNS)),
                       pd.DataFrame(quarantine, columns=list(QUARANTINE_COLUMNS)),
                       len(records), duplicates, fmt)


def read_records(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """(row number, record) for each record, and the unit rows are counted in ("line" or "row");
    blank rows are not records, any other row that cannot be parsed is an error naming it."""
    if not path.is_file():
        raise PairsError(f"{path}: no such file; give a {'/'.join(sorted(FORMATS))} pairs file")
    try:
        _, rows, fmt = read_file(path)
    except TableError as e:
        raise PairsError(str(e)) from e
    records = []
    for position, row in enumerate(rows):
        number = fmt.row_number(position)
        if row.record is not None:
            records.append((number, row.record))
        elif not row.blank:
            raise PairsError(f"{path}, {fmt.unit} {number}: {row.error}; fix or remove that {fmt.unit}")
    return records, fmt.unit


def detect_schema(path: Path, columns: list[str]) -> str:
    """The pair schema whose columns the file has (mc before comparison before user)."""
    cols = set(columns)
    if {"label", "meta_info"} <= cols:
        return "mc"
    if {"prompt", "pos_resp", "neg_resp"} <= cols and cols & {"pos_type", "neg_type"}:
        return "comparison"
    if {"pos_resp", "neg_resp"} <= cols and cols & {"question", "prompt"}:
        return "user"
    raise PairsError(
        f"{path}: cannot tell the pairs format from the columns {', '.join(columns) or '(none)'}; "
        "expected label + meta_info (CValues mc), prompt + pos_resp + neg_resp + pos_type/neg_type "
        "(CValues-Comparison) or question + pos_resp + neg_resp (user pairs); rename the columns "
        "or pass the format explicitly")


def _check_columns(path: Path, columns: list[str], fmt: str) -> str:
    missing = [c for c in _REQUIRED[fmt] if c not in columns]
    if fmt == "user" and not {"question", "prompt"} & set(columns):
        missing.insert(0, "question")
    if missing:
        raise PairsError(f"{path}: format {fmt} needs the column(s) {', '.join(missing)}; "
                         f"the file has {', '.join(columns) or '(none)'}")
    return fmt


def _to_pair(rec: dict[str, Any], fmt: str, where: str) -> tuple[dict[str, Any], str | None]:
    """The pair of one record and None, or a partial pair and the reason to quarantine the row."""
    if fmt == "mc":
        fields = _mc_fields(rec, where)
    elif fmt == "comparison":
        fields = {"question": rec.get("prompt"), "pos_resp": rec.get("pos_resp"),
                  "neg_resp": rec.get("neg_resp")}
    else:
        question = rec.get("question") if "question" in rec else rec.get("prompt")
        fields = {"question": question, "pos_resp": rec.get("pos_resp"), "neg_resp": rec.get("neg_resp"),
                  "domain": rec.get("domain"), "difficulty": rec.get("difficulty"),
                  "pair_id": rec.get("pair_id")}
    for col in _TEXTS:
        value = fields[col]
        if _is_missing(value):
            return fields, f"missing {col}"
        if not isinstance(value, str):
            return fields, f"{col} is not text (got {type(value).__name__})"
        if undecodable(value):
            return fields, f"{col} is not UTF-8 text"
        if not value.strip():
            return fields, f"empty {col}"
    if fields["pos_resp"].strip() == fields["neg_resp"].strip():
        return fields, "pos_resp and neg_resp are the same text"
    given_id = None if _is_missing(fields.get("pair_id")) else str(fields["pair_id"]).strip()
    pair = {k: fields[k] for k in _TEXTS}
    pair["pair_id"] = given_id or pair_id_of(*(fields[k] for k in _TEXTS))
    for col in ("domain", "difficulty"):
        value = fields.get(col)
        pair[col] = UNKNOWN if _is_missing(value) or not str(value).strip() else str(value).strip()
    pair["source_format"] = fmt
    return pair, None


def _mc_fields(rec: dict[str, Any], where: str) -> dict[str, Any]:
    label, meta = rec.get("label"), rec.get("meta_info")
    if label not in CHOICES:
        raise PairsError(f"{where}, column label: {label!r} is not {' or '.join(CHOICES)}; "
                         "fix the label (回复1 when the better reply is shown first)")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as e:
            raise PairsError(f"{where}, column meta_info: not valid JSON ({e.msg})") from e
    if not isinstance(meta, dict):
        raise PairsError(f"{where}, column meta_info: expected an object with question, pos_resp, "
                         f"neg_resp, got {type(meta).__name__}; fix the row or remove it")
    return {"question": meta.get("question"), "pos_resp": meta.get("pos_resp"),
            "neg_resp": meta.get("neg_resp"), "domain": meta.get("domain_zh") or meta.get("domain_en"),
            "difficulty": meta.get("difficulty_level")}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _raw(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, default=str)[:1000]
