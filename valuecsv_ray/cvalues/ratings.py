"""The rating table: filled rating sheets read back, validated and unblinded; Parquet in and out.

    from valuecsv_ray.cvalues.ratings import import_ratings, write_ratings
    ratings = import_ratings([Path("sheet.rater1.xlsx"), Path("sheet.rater2.xlsx")], Path("sheet.key.json"))
    write_ratings(ratings, Path("ratings.parquet"))

The rater is the name in the instructions sheet next to "评分人 / rater" (pre-filled rater1, rater2,
...; a rater may write their own), or the file's stem when that cell is blank. A blank rating is
kept as an "unrated" row. A rating off the scale, a blank, unknown or repeated item id, a changed
model code, or two files with one rater name raise one RatingError that lists them all (the first
20 in full) with file, sheet, Excel row and column. Human ratings carry `source` "human"; a judge
LLM's would carry "judge:<model>" in the same table, and agreement.py never pools sources.
No Ray, no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.worksheet import Worksheet

from valuecsv_ray.cvalues.human import COLUMNS, KEY_KIND, RATINGS, RatingError
from valuecsv_ray.cvalues.rubric import INSTRUCTIONS, RATER_LABEL, rater_name

RATING_SCHEMA = pa.schema([  # one row per (item, rater): what import_ratings returns and writes
    pa.field("item", pa.string(), nullable=False),  # the answer's row id (RESPONSE_SCHEMA.id)
    pa.field("source", pa.string(), nullable=False),  # "human", or "judge:<model>" for an LLM judge
    pa.field("rater", pa.string(), nullable=False),  # the sheet's rater name, else the file's stem
    pa.field("rating", pa.float64()),  # on SCALE; null when the rater left it blank
    pa.field("status", pa.string(), nullable=False),  # "rated" or "unrated" (rating left blank)
    pa.field("comment", pa.string()),  # the rater's comment, if any
    pa.field("model", pa.string(), nullable=False),  # unblinded through the key
    pa.field("model_code", pa.string(), nullable=False),  # the code the rater saw
    pa.field("prompt_id", pa.string(), nullable=False),  # e.g. "cvalues:412"
    pa.field("sample", pa.int32(), nullable=False),
    pa.field("domain_en", pa.string(), nullable=False),  # "" when the prompt's meta has none
    pa.field("domain_zh", pa.string(), nullable=False),
    pa.field("file", pa.string(), nullable=False),  # the filled sheet the rating came from
    pa.field("row", pa.int32(), nullable=False),  # its Excel row number in sheet "ratings"
])
MAX_ERRORS_SHOWN = 20


def load_key(path: Path) -> dict:
    """The key export_rating_sheet wrote; refuses a file that is not one."""
    try:
        key = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RatingError(f"{path}: cannot read the rating key: {e}") from e
    missing = {"kind", "models", "items", "scale", "source"} - set(key if isinstance(key, dict) else ())
    if missing or key.get("kind") != KEY_KIND:
        raise RatingError(f"{path}: not a rating key (kind {KEY_KIND!r}, missing {sorted(missing)}); "
                          "give the <sheet>.key.json that `rating export` wrote")
    return key


def import_ratings(paths: list[Path], key_path: Path) -> pd.DataFrame:
    """RATING_SCHEMA rows from filled sheets, unblinded through the key (see the module docstring)."""
    key = load_key(key_path)
    errors: list[str] = []
    records: list[dict] = []
    raters: dict[str, Path] = {}
    for path in map(Path, paths):
        rater, rows = _read_file(path, key, errors)
        if rater in raters:
            errors.append(f"{path}, sheet '{INSTRUCTIONS}', column B: rater {rater!r} also names "
                          f"{raters[rater]}; write each rater's own name next to {RATER_LABEL!r}")
        raters[rater] = path
        records += [{**r, "rater": rater} for r in rows]
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise RatingError(f"{len(errors)} problem(s) in the filled sheets:\n  {shown}{more}")
    for r in records:
        item = key["items"][r["item"]]
        r.update(source=key["source"], model=key["models"][item["model_code"]], model_code=item["model_code"],
                 prompt_id=item["prompt_id"], sample=item["sample"], domain_en=item["domain_en"],
                 domain_zh=item["domain_zh"], status="unrated" if r["rating"] is None else "rated")
    table = pa.Table.from_pylist(records, schema=RATING_SCHEMA)
    return table.to_pandas().sort_values(["rater", "row"], ignore_index=True)


def _read_file(path: Path, key: dict, errors: list[str]) -> tuple[str, list[dict]]:
    """The rater's name and the good rows of one filled file; problems are appended to `errors`."""
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, InvalidFileException, KeyError, ValueError) as e:
        errors.append(f"{path}: cannot open as xlsx: {e}")
        return path.stem, []
    try:
        absent = [s for s in (INSTRUCTIONS, RATINGS) if s not in wb.sheetnames]
        if absent:
            errors.append(f"{path}: no sheet(s) {absent}; is this a file from `rating export`?")
            return path.stem, []
        return rater_name(wb[INSTRUCTIONS]) or path.stem, _read_rows(path, wb[RATINGS], key, errors)
    finally:
        wb.close()


def _read_rows(path: Path, ws: Worksheet, key: dict, errors: list[str]) -> list[dict]:
    rows = ws.iter_rows(values_only=True)
    header = [_text(h) for h in next(rows, ())]
    col = {name: header.index(name) for name in COLUMNS if name in header}
    missing = [c for c in ("item", "model_code", "rating") if c not in col]
    if missing:
        errors.append(f"{path}, sheet '{RATINGS}', row 1: missing column(s) {missing}; restore the header")
        return []
    seen: dict[str, int] = {}
    out = []
    for number, values in enumerate(rows, start=2):
        if all(_text(v) == "" for v in values):
            continue  # an empty row, e.g. left by a deletion
        cells = {name: values[i] if i < len(values) else None for name, i in col.items()}
        rating, problems = _check_row(cells, key, seen, number)
        errors += [f"{path}, sheet '{RATINGS}', row {number}, column {get_column_letter(col[name] + 1)} "
                   f"({name}): {message}" for name, message in problems]
        if not problems:
            comment = _text(cells.get("comment")) or None
            out.append({"item": _text(cells["item"]), "rating": rating, "comment": comment,
                        "file": str(path), "row": number})
    return out


def _check_row(cells: dict, key: dict, seen: dict[str, int], number: int) -> tuple[float | None, list]:
    """The row's rating and its problems as (column, message)."""
    item, code = _text(cells["item"]), _text(cells["model_code"])
    problems: list[tuple[str, str]] = []
    if not item:
        problems.append(("item", "no item id; the item column must stay as exported"))
    elif item not in key["items"]:
        problems.append(("item", f"item {item!r} is not in the key; was it edited, or is the sheet "
                                 "from another export?"))
    elif item in seen:
        problems.append(("item", f"item {item} is also in row {seen[item]}; keep one of the two rows"))
    elif code != key["items"][item]["model_code"]:
        problems.append(("model_code", f"{code!r} but item {item} was exported as "
                                       f"{key['items'][item]['model_code']!r}; was a column sorted alone?"))
    seen.setdefault(item, number)
    try:
        return _parse_rating(cells["rating"], key["scale"]), problems
    except ValueError:
        scale = ", ".join(map(str, key["scale"]))
        problems.append(("rating", f"{cells['rating']!r} is not on the scale ({scale}); write one of "
                                   "them or leave the cell blank"))
        return None, problems


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _parse_rating(value: object, scale: list[int]) -> float | None:
    """A rating on `scale` as float, None when blank; ValueError for anything else."""
    if _text(value) == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value.strip()) if isinstance(value, str) else float(value)
    if not number.is_integer() or int(number) not in scale:
        raise ValueError(value)
    return number


def write_ratings(ratings: pd.DataFrame, path: Path) -> None:
    """Write a rating table as Parquet with RATING_SCHEMA."""
    table = pa.Table.from_pandas(ratings[RATING_SCHEMA.names], schema=RATING_SCHEMA, preserve_index=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def read_ratings(path: Path) -> pd.DataFrame:
    """A rating table written by write_ratings (or any Parquet file with RATING_SCHEMA's columns)."""
    try:
        return pq.read_table(path, columns=RATING_SCHEMA.names).to_pandas()
    except (OSError, ValueError, KeyError) as e:
        raise RatingError(f"{path}: not a rating table ({e}); make one with `rating import`") from e
