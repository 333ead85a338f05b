"""Plain-text tables for the terminal, aligned by display width so that Chinese cells line up.

    print(text_table(["rank", "model", "score"], [["1", "通义千问", "71.20"]], right={0, 2}))
    print(frame_table(df, right=["n", "mean"]))   # a DataFrame, numbers to the right

Every printer of a table (`score`, `audit`, `leaderboard`, `compare`, `registry`, `cvalues`, `rating
summary`) goes through `text_table`, so all use one width rule: `wcwidth.wcswidth`, which counts
East Asian wide and full-width characters as two columns and combining marks and zero-width joiners
as none (unicodedata.east_asian_width alone gets those wrong, and pandas' to_string counts
characters). Columns are separated by two spaces; trailing blanks are cut.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

from wcwidth import wcswidth, wcwidth

if TYPE_CHECKING:
    import pandas as pd

GAP = "  "  # between columns


def display_width(text: str) -> int:
    """Terminal columns `text` takes: 2 per wide character, 0 per combining one, 1 per control
    character (which a table cell should not hold; counted so that it still pads sensibly)."""
    width = wcswidth(text)
    if width >= 0:
        return width
    return sum(w if (w := wcwidth(ch)) >= 0 else 1 for ch in text)


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]], right: Collection[int] = ()) -> str:
    """`header` and `rows` (cells as str(cell)) as aligned lines; the column positions in `right` are
    right-aligned, the others left-aligned."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    ragged = [i for i, row in enumerate(cells[1:]) if len(row) != len(header)]
    if ragged:
        raise ValueError(f"row {ragged[0]} has {len(cells[ragged[0] + 1])} cells, the header {len(header)}")
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = enumerate(zip(row, widths, strict=True))
        return GAP.join(_pad(cell, width, i in right) for i, (cell, width) in cells).rstrip()

    return "\n".join(line(row) for row in cells)


def _pad(cell: str, width: int, right: bool) -> str:
    blank = " " * (width - display_width(cell))
    return blank + cell if right else cell + blank


def frame_table(frame: pd.DataFrame, right: Collection[str] | None = None, float_format: str = ".3f",
                missing: str = "-", index: bool = False) -> str:
    """A DataFrame as text_table: floats formatted with `float_format`, NaN/None as `missing`; the
    columns named in `right` right-aligned (default: the numeric columns); the index as a first,
    left-aligned column when `index`."""
    import pandas as pd  # the caller has it loaded: it passes a DataFrame

    def cell(value: object) -> str:
        if pd.api.types.is_scalar(value) and pd.isna(value):
            return missing
        if isinstance(value, Real) and not isinstance(value, Integral):  # floats, numpy's included
            return format(value, float_format)
        return str(value)

    if right is None:
        right = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
    header = [str(c) for c in frame.columns]
    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    positions = {i for i, c in enumerate(frame.columns) if c in set(right)}
    if index:
        name = frame.index.name if frame.index.name is not None else ""
        header = [str(name), *header]
        rows = [[str(key), *row] for key, row in zip(frame.index, rows, strict=True)]
        positions = {i + 1 for i in positions}
    return text_table(header, rows, positions)
