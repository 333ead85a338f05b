"""Prompt suites: the questions put to every LLM, each with a stable `prompt_id`.

    prompts, skipped = load_suite("quest100", data_dir=Path("data"))   # quest100:1 ... quest100:100
    prompts, skipped = load_suite("cvalues-responsibility=data/cvalues_responsibility_prompts.jsonl")
    prompts, skipped = load_suite("my_prompts.csv")                     # any file with id + prompt

A suite spec is a built-in name (its file looked up in `data_dir`), `NAME=PATH` (a built-in
suite read from PATH), or the path of a user file (any format of `valuecsv_ray.tables`: JSONL, CSV,
Parquet, xlsx, with an id and a prompt column; the suite is the file's stem). Built-in suites:
- `quest100`: the 100 numbered questions of ValueCSV's quest100.xlsx (CC BY 4.0,
  github.com/ValueCSV/ValueCSV, Dataset/): the "N." prefix (with its non-breaking space) is
  stripped and N becomes the id; blank cells are skipped.
- `cvalues-responsibility`: CValues' 664 responsibility prompts (Apache-2.0, github.com/X-PLUG/
  CValues, dataset/cvalues_responsibility_prompts.jsonl), ids `cvalues:<id_>`, domains in `meta`.
Rows that cannot be prompts are returned as `skipped` (position, reason), never dropped silently.
No Ray, no torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from valuecsv_ray.collect.schema import PROMPT_SCHEMA
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.tables import BAD_ENCODING, FORMATS, TableError, read_file, read_frame, undecodable


class SuiteError(ValuecsvError, ValueError):
    """A prompt suite that cannot be read; the message names the file, row or column and the fix."""


@dataclass(frozen=True)
class Builtin:
    """A suite shipped as a name: the file it reads and where that file comes from."""

    file: str
    prefix: str  # prompt_id prefix
    source: str  # where to download the file


BUILTINS = {
    "quest100": Builtin(
        "quest100.xlsx", "quest100", "https://github.com/ValueCSV/ValueCSV (Dataset/quest100.xlsx, CC BY 4.0)"
    ),
    "cvalues-responsibility": Builtin(
        "cvalues_responsibility_prompts.jsonl",
        "cvalues",
        "https://github.com/X-PLUG/CValues (dataset/cvalues_responsibility_prompts.jsonl, Apache-2.0)",
    ),
}
ID_COLUMNS = ("prompt_id", "id", "id_", "qid")  # user files: the first of these present is the id
PROMPT_COLUMNS = ("prompt", "question", "quest", "instruction")
_NUMBERED = re.compile(r"^\s*(\d+)\s*[.．、]\s*(.*)$", re.S)  # "17.\xa0..." (\s matches \xa0)


def load_suite(spec: str, data_dir: Path | None = None) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The prompts of a suite (PROMPT_SCHEMA columns) and the rows skipped, as (row, reason)."""
    name, _, given = spec.partition("=")
    if name in BUILTINS:
        builtin = BUILTINS[name]
        path = Path(given) if given else Path(data_dir or "data") / builtin.file
        if not path.is_file():
            raise SuiteError(
                f"suite {name!r} reads {builtin.file}, not found at {path}: download it from "
                f"{builtin.source} and give --suite {name}=PATH (or --data-dir FOLDER)"
            )
        reader = _quest100 if name == "quest100" else _cvalues
        prompts, skipped = reader(path, builtin.prefix)
    elif given:
        raise SuiteError(
            f"--suite {spec!r}: unknown suite {name!r}; built-in suites are "
            f"{', '.join(BUILTINS)} (or give the path of a {'/'.join(sorted(FORMATS))} file)"
        )
    else:
        prompts, skipped = _user_file(Path(spec))
    if prompts.empty:
        raise SuiteError(f"suite {spec!r} has no prompts ({len(skipped)} rows skipped)")
    return prompts, skipped


def suite_table(prompts: pd.DataFrame) -> pa.Table:
    """The prompts as a PROMPT_SCHEMA table."""
    return pa.Table.from_pandas(prompts[PROMPT_SCHEMA.names], schema=PROMPT_SCHEMA, preserve_index=False)


def _frame(rows: list[tuple[str, str, str, dict]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (pid, suite, prompt, json.dumps(meta, ensure_ascii=False, default=_plain))
            for pid, suite, prompt, meta in rows
        ],
        columns=PROMPT_SCHEMA.names,
    )


def _quest100(path: Path, prefix: str) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The numbered questions in the first column (of the first sheet), below its header."""
    try:
        columns, table, fmt = read_file(path)
    except TableError as e:
        raise SuiteError(f"{e}; expected ValueCSV's quest100.xlsx") from e
    rows, skipped, seen = [], [], set()
    for position, item in enumerate(table):
        r, cell = fmt.row_number(position), (item.record or {}).get(columns[0] if columns else "")
        text = str(cell).strip() if cell is not None else ""
        match = _NUMBERED.match(text)
        if item.record is None and not item.blank:
            skipped.append((r, str(item.error)))
        elif not text:
            skipped.append((r, "blank question cell"))
        elif not match or not match.group(2).strip():
            skipped.append((r, f"not a numbered question: {text[:60]!r}"))
        elif match.group(1) in seen:
            skipped.append((r, f"question number {match.group(1)} repeated"))
        else:
            seen.add(match.group(1))
            rows.append(
                (
                    f"{prefix}:{match.group(1)}",
                    "quest100",
                    match.group(2).strip(),
                    {"number": int(match.group(1))},
                )
            )
    return _frame(rows), skipped


def _cvalues(path: Path, prefix: str) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    try:
        _, table, fmt = read_file(path)
    except TableError as e:
        raise SuiteError(f"{e}; expected CValues' prompt records") from e
    rows, skipped, seen = [], [], set()
    for position, item in enumerate(table):
        r, record = fmt.row_number(position), item.record
        if item.blank:
            continue
        if record is None:
            raise SuiteError(f"{path}, {fmt.unit} {r}: {item.error}; expected CValues' prompt records")
        missing = [k for k in ("id_", "prompt") if record.get(k) in (None, "")]
        if missing or str(record["id_"]) in seen:
            skipped.append(
                (r, f"missing {', '.join(missing)}" if missing else f"id_ {record['id_']} repeated")
            )
            continue
        seen.add(str(record["id_"]))
        meta = {k: v for k, v in record.items() if k not in ("id_", "prompt")}
        rows.append(
            (f"{prefix}:{record['id_']}", "cvalues-responsibility", str(record["prompt"]).strip(), meta)
        )
    return _frame(rows), skipped


def _user_file(path: Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    table = _read_user_file(path)
    id_col = next((c for c in ID_COLUMNS if c in table.columns), None)
    prompt_col = next((c for c in PROMPT_COLUMNS if c in table.columns), None)
    if id_col is None or prompt_col is None:
        raise SuiteError(
            f"{path}: a prompt suite needs an id column (one of {', '.join(ID_COLUMNS)}) and a "
            f"prompt column (one of {', '.join(PROMPT_COLUMNS)}); found {', '.join(table.columns)}"
        )
    suite, rows, skipped, seen = path.stem, [], [], set()
    extra = [c for c in table.columns if c not in (id_col, prompt_col, "suite")]
    for r, record in enumerate(table.to_dict("records"), start=1):
        pid, prompt = _cell(record[id_col]), _cell(record[prompt_col])
        if pid is None or prompt is None:
            skipped.append((r, f"empty {id_col if pid is None else prompt_col}"))
        elif undecodable(pid, prompt):
            skipped.append((r, BAD_ENCODING))
        elif pid in seen:
            skipped.append((r, f"{id_col} {pid!r} repeated"))
        else:
            seen.add(pid)
            meta = (
                record.get("meta")
                if isinstance(record.get("meta"), dict)
                else {c: record[c] for c in extra if _cell(record[c]) is not None}
            )
            full_id = pid if ":" in pid else f"{suite}:{pid}"
            rows.append((full_id, _cell(record.get("suite")) or suite, prompt, meta))
    return _frame(rows), skipped


def _read_user_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SuiteError(f"--suite {path}: no such file, and not a built-in suite ({', '.join(BUILTINS)})")
    try:
        return read_frame(path)  # object columns: an id stays 3, not 3.0 beside a null
    except TableError as e:
        raise SuiteError(f"{e}; fix the file or give another --suite") from e


def _plain(value: object) -> object:
    """numpy scalars (from pandas records) as Python values, anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def _cell(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None
