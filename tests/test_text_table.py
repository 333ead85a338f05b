"""One table formatter for the terminal: display widths (wide, full-width, combining, control
characters), alignment, DataFrames, and the printers that use it lining up Chinese cells."""

import numpy as np
import pandas as pd
import pytest

from valuecsv_ray.text_table import display_width, frame_table, text_table


@pytest.mark.parametrize("text,width", [
    ("", 0), ("abc", 3), ("诚信", 4), ("ＡＢ", 4),  # full-width Latin letters
    ("e\u0301", 1),  # e + combining acute accent
    ("👩\u200d💻", 2),  # a ZWJ sequence: one emoji on the screen
    ("a\tb", 3),  # a control character counts as one column
])
def test_display_width(text, width):
    assert display_width(text) == width


def widths(text: str) -> list[int]:
    return [display_width(line) for line in text.splitlines()]


def test_columns_line_up_by_display_width():
    text = text_table(["rank", "model", "score"], [["1", "通义千问", "71.20"], ["10", "glm-4", "7.20"]],
                      right={0, 2})
    header, first, second = text.splitlines()
    assert header == "rank  model     score"
    assert first == "   1  通义千问  71.20"
    assert second == "  10  glm-4      7.20"
    assert len(set(widths(text))) == 1  # the right-aligned last column ends in one place


def test_left_aligned_last_column_has_no_trailing_blanks_and_ragged_rows_are_refused():
    text = text_table(["a", "b"], [["1", ""], ["22", "富强"]])
    assert text.splitlines() == ["a   b", "1", "22  富强"]
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
        text_table(["a", "b"], [["1", "2"], ["3"]])


def test_frame_table_formats_numbers_and_missing_cells():
    frame = pd.DataFrame({"model": ["通义千问", "b"], "n": [3, 120], "mean": [0.5, np.nan],
                          "note": ["和谐", None]})
    lines = frame_table(frame).splitlines()
    assert lines == ["model       n   mean  note",
                     "通义千问    3  0.500  和谐",
                     "b         120      -  -"]
    indexed = frame_table(frame.set_index("model"), right=["n"], float_format=".1f", index=True)
    assert indexed.splitlines()[1] == "通义千问    3  0.5   和谐"


def test_the_printers_line_up_chinese_cells():
    from valuecsv_ray.cli import format_scores
    from valuecsv_ray.leaderboard import format_leaderboard
    from valuecsv_ray.taxonomy import Label

    labels = [Label("prosperity", "Prosperity", "富强", "国家", "a"), Label("x", "X", "", "个人", "b")]
    results = [{"probs": {"prosperity": 0.9, "x": 0.1}, "labels": {"prosperity": True, "x": False}}]
    header, *rows, footnote = format_scores(["依法治国"], results, labels).splitlines()
    assert footnote.startswith("* = ") and display_width(header) == display_width(rows[0])
    assert len({display_width(row[:row.index("0.")]) for row in rows}) == 1, rows  # the scores line up

    board = pd.DataFrame({"profile": "uniform", "rank": [1, 2], "model": ["通义千问", "glm-4"],
                          "score": [71.2, 65.1], "lo": [70.0, 64.0], "hi": [72.0, 66.0], "n_prompts": 10})
    rows = format_leaderboard(board).splitlines()[2:]
    assert len(set(widths("\n".join(rows)))) == 1, rows


def test_a_table_that_pandas_printed_now_lines_up():
    from valuecsv_ray.registry.manifest import format_metrics_table

    numbers = {c: [0.5, 0.25] for c in ["acc", "P", "R", "F1", "AUC", "ECE", "ECE_T", "T", "threshold"]}
    table = pd.DataFrame({"value": ["Prosperity 富强", "Rule of law 法治"], "level": ["国家", "社会层面"],
                          **numbers, "n_test": [120, 80], "n_pos": [30, 7]})
    *rows, mean_row = format_metrics_table(table).splitlines()
    assert len(set(widths("\n".join(rows)))) == 1, rows  # pandas' to_string counted 富强 as 2 columns
    assert mean_row.startswith("macro mean") and mean_row.split()[-1] == "0.375"
