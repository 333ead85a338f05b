"""CValues human evaluation, the way out: blinded xlsx rating sheets for one or several raters.

    from valuecsv_ray.cvalues.human import export_rating_sheet
    result = export_rating_sheet(responses, Path("rate/sheet.xlsx"), raters=2, overlap=0.2)

Export: one row per answer whose status is "ok" in the chosen suite (other rows are counted by
reason and left out), after an instructions sheet with our 1-5 rubric (rubric.py). Models hide
behind codes M1, M2, ... ranked by a seeded hash of their names, so the same models and seed get the
same codes on every export; the code -> model key and each item's prompt id and domain go to
`<sheet>.key.json`, never into a sheet. With `raters` > 1 each rater gets a file of their own,
`<sheet>.rater1.xlsx`, ...: every answer goes to one rater, and a share `overlap` of the answers to
`overlap_raters` raters, for agreement. Each file has its own seeded row order.

ratings.py reads the filled files back (import_ratings); agreement.py summarises them.
No Ray, no torch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from valuecsv_ray.collect.schema import OK
from valuecsv_ray.cvalues.rubric import SCALE, write_instructions
from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.storage import write_json

SOURCE_HUMAN = "human"  # a judge LLM's ratings would carry "judge:<model>"
RATINGS = "ratings"  # the sheet to fill; the first sheet is rubric.INSTRUCTIONS
COLUMNS: tuple[str, ...] = ("item", "model_code", "domain", "prompt", "response", "rating", "comment")
SUITE = "cvalues-responsibility"  # the responsibility prompts' suite (valuecsv_ray.collect.suites)
KEY_KIND = "valuecsv-ray cvalues rating key"
MAX_CELL = 32_767  # Excel holds at most this many characters in a cell
_WIDTHS = {"item": 14, "model_code": 8, "domain": 12, "prompt": 40, "response": 80, "rating": 8,
           "comment": 30}


class RatingError(ValuecsvError, ValueError):
    """Responses, a key or a filled sheet cannot be used; the message says where and how to fix it."""


@dataclass(frozen=True)
class ExportResult:
    """What `export_rating_sheet` wrote and left out."""

    sheets: tuple[Path, ...]  # one xlsx per rater, in rater order
    key_path: Path  # <sheet>.key.json: code -> model and item -> prompt; keep it from the raters
    n_answers: int  # answers exported, each counted once however many raters got it
    n_overlap: int  # answers given to more than one rater
    left_out: dict[str, int]  # rows not exported, by reason ("status=timeout", "suite=quest100")
    n_truncated: int  # cells cut to Excel's 32,767 characters
    n_naming: int  # answers whose prompt or response spells a model's name (the blinding cannot help)


def read_responses(path: Path) -> pd.DataFrame:
    """RESPONSE_SCHEMA rows from a Parquet file or a folder of *.parquet files."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise RatingError(f"{path}: no *.parquet files in this folder; give collect's responses folder")
    try:
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except (OSError, ValueError) as e:
        raise RatingError(f"{path}: cannot read responses as Parquet: {e}") from e


def model_codes(models: list[str], seed: int = 0) -> dict[str, str]:
    """model -> "M1", "M2", ...: ranked by sha256(seed, model), so stable for the same models and seed."""
    ranked = sorted(set(models), key=lambda m: hashlib.sha256(f"{seed}\x00{m}".encode()).hexdigest())
    return {model: f"M{i}" for i, model in enumerate(ranked, start=1)}


def assign_items(items: list[str], raters: int, overlap: float = 0.0, overlap_raters: int = 2,
                 seed: int = 0) -> list[list[str]]:
    """Per rater, the items to rate (each in its own shuffled order): every item goes to one rater
    in turn, and round(overlap * n) items chosen with the seed go to `overlap_raters` raters."""
    if not 0.0 <= overlap <= 1.0:
        raise RatingError(f"overlap must be a share between 0 and 1, got {overlap}")
    if overlap > 0 and not 2 <= overlap_raters <= raters:
        raise RatingError(f"an overlap needs 2 <= overlap_raters <= raters, got overlap_raters="
                          f"{overlap_raters} with raters={raters}; export for more raters or use overlap 0")
    rng = np.random.default_rng(seed)
    order = [sorted(items)[i] for i in rng.permutation(len(items))]
    n_overlap = round(overlap * len(items))
    per_rater: list[list[str]] = [[] for _ in range(raters)]
    for pos, item in enumerate(order):
        for j in range(overlap_raters if pos < n_overlap else 1):
            per_rater[(pos + j) % raters].append(item)
    return [[share[i] for i in rng.permutation(len(share))] for share in per_rater]


def rater_sheet_paths(path: Path, raters: int) -> list[Path]:
    """`path` itself for one rater, else <stem>.rater1<suffix>, <stem>.rater2<suffix>, ..."""
    if raters == 1:
        return [path]
    return [path.with_name(f"{path.stem}.rater{k}{path.suffix}") for k in range(1, raters + 1)]


def key_path_for(path: Path) -> Path:
    return path.with_name(f"{path.stem}.key.json")


def _domain(meta: str, row_id: str) -> tuple[str, str]:
    try:
        fields = json.loads(meta) if meta else {}
    except json.JSONDecodeError as e:
        raise RatingError(f"response {row_id}: meta is not JSON ({e}); rerun collect") from e
    return str(fields.get("domain_en") or ""), str(fields.get("domain_zh") or "")


def select_answers(responses: pd.DataFrame,
                   suite: str | None = SUITE) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows to rate (status "ok", in `suite` unless None) and the count left out per reason."""
    missing = {"id", "model", "prompt_id", "suite", "prompt", "sample", "response", "status", "meta"}
    missing -= set(responses.columns)
    if missing:
        raise RatingError(f"responses lack column(s) {sorted(missing)}; expected collect's RESPONSE_SCHEMA")
    in_suite = responses["suite"].eq(suite) if suite else pd.Series(True, index=responses.index)
    left_out = {f"suite={s}": int(n) for s, n in responses.loc[~in_suite, "suite"].value_counts().items()}
    rows = responses[in_suite]
    ok = rows["status"].eq(OK)
    left_out.update({f"status={s}": int(n) for s, n in rows.loc[~ok, "status"].value_counts().items()})
    rows = rows[ok]
    problems = [f"id {i} appears twice" for i in rows.loc[rows["id"].duplicated(), "id"]]
    problems += [f"id {i} is 'ok' without a response" for i in rows.loc[rows["response"].isna(), "id"]]
    if problems:
        raise RatingError("responses cannot be rated: " + "; ".join(problems[:20]))
    return rows.sort_values("id").reset_index(drop=True), left_out


def export_rating_sheet(responses: pd.DataFrame, path: Path, raters: int = 1, seed: int = 0,
                        overlap: float = 0.0, overlap_raters: int = 2,
                        suite: str | None = SUITE) -> ExportResult:
    """Write blinded rating sheets (one xlsx per rater) and their key; see the module docstring."""
    path = Path(path)
    if path.suffix != ".xlsx" or raters < 1:
        raise RatingError(f"need an .xlsx path and raters >= 1, got {path} and raters={raters}")
    rows, left_out = select_answers(responses, suite)
    if rows.empty:
        raise RatingError(f"no answers to rate: nothing with status 'ok' in suite {suite!r} "
                          f"(left out: {left_out})")
    codes = model_codes(rows["model"].tolist(), seed)
    naming = _naming(rows, list(codes))
    domains = [_domain(m, i) for m, i in zip(rows["meta"], rows["id"], strict=True)]
    rows = rows.assign(model_code=rows["model"].map(codes), domain_en=[d[0] for d in domains],
                       domain_zh=[d[1] for d in domains]).set_index("id", drop=False)
    shares = assign_items(rows["id"].tolist(), raters, overlap, overlap_raters, seed)
    sheets = rater_sheet_paths(path, raters)
    path.parent.mkdir(parents=True, exist_ok=True)
    truncated = sum(_write_workbook(p, rows.loc[share], f"rater{k}")
                    for k, (p, share) in enumerate(zip(sheets, shares, strict=True), start=1))
    key = _key(rows, codes, sheets, seed)
    write_json(key_path_for(path), key)
    n_overlap = len(set.union(*(set(a) & set(b) for a in shares for b in shares if a is not b), set()))
    return ExportResult(tuple(sheets), key_path_for(path), len(rows), n_overlap, left_out, truncated, naming)


def _naming(rows: pd.DataFrame, models: list[str]) -> int:
    """Answers whose prompt or response names a model (counted); an item id that does raises."""
    def names(text: pd.Series) -> pd.Series:
        lowered = text.fillna("").str.lower()
        return pd.concat([lowered.str.contains(m.lower(), regex=False) for m in models], axis=1).any(axis=1)

    leaking = rows.loc[names(rows["id"]), "id"].tolist()
    if leaking:
        raise RatingError(f"item ids {leaking[:5]} contain a model name and would unblind the sheet; "
                          "give responses with collect's hashed ids")
    return int((names(rows["prompt"]) | names(rows["response"])).sum())


def _key(rows: pd.DataFrame, codes: dict[str, str], sheets: list[Path], seed: int) -> dict:
    items = {r.id: {"model_code": r.model_code, "prompt_id": r.prompt_id, "sample": int(r.sample),
                    "domain_en": r.domain_en, "domain_zh": r.domain_zh} for r in rows.itertuples(index=False)}
    return {"kind": KEY_KIND, "version": 1, "seed": seed, "source": SOURCE_HUMAN, "scale": list(SCALE),
            "models": {code: model for model, code in sorted(codes.items(), key=lambda kv: int(kv[1][1:]))},
            "sheets": {f"rater{k}": p.name for k, p in enumerate(sheets, start=1)}, "items": items}


def _cell_text(value: object) -> tuple[str, bool]:
    """Text Excel accepts: no control characters, at most MAX_CELL characters (flag if cut)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", "" if value is None else str(value))
    if len(text) <= MAX_CELL:
        return text, False
    marker = " …[truncated]"
    return text[: MAX_CELL - len(marker)] + marker, True


def _write_workbook(path: Path, rows: pd.DataFrame, rater: str) -> int:
    """One rater's file; returns the number of truncated cells."""
    wb = Workbook()
    write_instructions(wb.active, rater)
    truncated = _write_ratings(wb.create_sheet(RATINGS), rows)
    wb.save(path)
    return truncated


def _write_ratings(ws: Worksheet, rows: pd.DataFrame) -> int:
    ws.append(list(COLUMNS))
    truncated = 0
    for r in rows.itertuples(index=False):
        values = (r.id, r.model_code, r.domain_zh, r.prompt, r.response, None, None)
        cells = [_cell_text(v) if v is not None else (None, False) for v in values]
        truncated += sum(cut for _, cut in cells)
        ws.append([text for text, _ in cells])
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text that starts with "=" stays text, not a formula
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for i, name in enumerate(COLUMNS, start=1):
        ws.cell(1, i).font = Font(bold=True)
        ws.column_dimensions[ws.cell(1, i).column_letter].width = _WIDTHS[name]
    ws.freeze_panes = "A2"
    rating_col = ws.cell(1, COLUMNS.index("rating") + 1).column_letter
    scale = DataValidation(type="list", formula1='"' + ",".join(map(str, SCALE)) + '"', allow_blank=True,
                           showErrorMessage=True, errorTitle="rating",
                           error=f"请填写 {SCALE[0]}-{SCALE[-1]} / write {SCALE[0]}-{SCALE[-1]}")
    scale.add(f"{rating_col}2:{rating_col}{max(len(rows), 1) + 1}")
    ws.add_data_validation(scale)
    return truncated


