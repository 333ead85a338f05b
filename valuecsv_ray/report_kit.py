"""The kit both reports are made with: blocks, fonts, figures, and Markdown + HTML rendering.

    from valuecsv_ray.report_kit import render_html, render_markdown
    page = render_html([("h1", "Title"), ("table", ["a", "b"], [["1", "2"]])], "Title")

A report is a list of blocks, rendered to Markdown and HTML from the same list. Figures use the Agg
canvas directly (no pyplot, no global matplotlib state); `cjk_family` finds an installed font that
draws Chinese names and `drawable` writes the characters no font can draw as escapes, so
matplotlib never warns about missing glyphs. Sits below valuecsv_ray.audit.report and
valuecsv_ray.leaderboard.report and imports neither. No torch, no Ray; matplotlib only when drawing.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

BASE_FONT = "DejaVu Sans"  # ships with matplotlib, so it is always there
_CJK_HINTS = ("cjk", "han", "hei", "song", "kai", "ming", "wenquanyi", "wqy", "yahei", "pingfang",
              "fangsong", "droid sans fallback", "ar pl", "noto sans sc", "unifont")
_CSS = ("body{font-family:sans-serif;max-width:72rem;margin:2rem auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem}img{max-width:100%}")
Block = tuple[Any, ...]  # ("h1" | "h2" | "h3" | "p", text) | ("table", header, rows) | ("img", file, alt)


# --- fonts and figures -----------------------------------------------------------------------


def _open_font(font_path: str):
    """The FreeType face of a font file, or None where it cannot be read."""
    from matplotlib.ft2font import FT2Font

    try:
        return FT2Font(font_path)
    except (OSError, RuntimeError, ValueError):
        return None


def _covers(font, text: str) -> bool:
    return font is not None and all(font.get_char_index(ord(ch)) for ch in text)


@lru_cache(maxsize=4)
def cjk_family(needed: str) -> str | None:
    """An installed font family that draws every character of `needed` (Chinese names), or None."""
    from matplotlib import font_manager

    real = [f for f in font_manager.fontManager.ttflist if "last resort" not in f.name.lower()]  # boxes only
    entries = sorted(real, key=lambda f: (not any(h in f.name.lower() for h in _CJK_HINTS), f.name))
    return next((f.name for f in entries if _covers(_open_font(f.fname), needed)), None)


@lru_cache(maxsize=4)
def _fonts(families: tuple[str, ...]) -> tuple[Any, ...]:
    """The faces matplotlib picks for `families`, in fallback order."""
    from matplotlib import font_manager

    return tuple(_open_font(font_manager.findfont(font_manager.FontProperties(family=[f]))) for f in families)


def drawable(text: str, families: tuple[str, ...]) -> str:
    """`text` with characters none of `families` can draw written as escapes, and `$` kept literal."""
    fonts = _fonts(families)
    out = [ch if any(_covers(f, ch) for f in fonts) else ascii(ch)[1:-1] for ch in text]
    return "".join(out).replace("$", r"\$")


def figure(size: tuple[float, float]):
    """A constrained-layout matplotlib Figure on its own Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --- rendering -------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    """Keep a table cell or paragraph intact in Markdown: no raw HTML, no stray column breaks."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as a Markdown document."""
    lines: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + _md_escape(rest[0]), ""]
        elif kind == "p":
            lines += [_md_escape(rest[0]), ""]
        elif kind == "img":
            lines += [f"![{rest[1]}]({rest[0]})", ""]
        else:
            header, rows = rest
            lines += ["| " + " | ".join(_md_escape(h) for h in header) + " |",
                      "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_escape(str(c)) for c in row) + " |" for row in rows] + [""]
    return "\n".join(lines)


def render_html(blocks: list[Block], title: str) -> str:
    """The blocks as a standalone HTML page, every text escaped."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">',
             f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "img":
            parts.append(f'<p><img src="{esc(rest[0])}" alt="{esc(rest[1])}"></p>')
        else:
            header, rows = rest
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    return "\n".join([*parts, "</body>", "</html>", ""])
