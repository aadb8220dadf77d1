"""HTML building blocks of the report: escaped text, sortable tables, embedded figures, tiles, the page."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from sftscope.report.style import CSS, JS

MAX_TABLE_ROWS = 400  # a compact pivot never needs more; the full table stays in the run directory


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section"


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return '<td data-v="">-</td>'
        shown = f"{value:.4g}" if abs(value) < 1e5 or not np.isfinite(value) else f"{value:.3e}"
        return f'<td data-v="{value!r}">{esc(shown)}</td>'
    if isinstance(value, (int, np.integer)):
        return f"<td>{int(value)}</td>"
    return f'<td class="txt">{esc("" if value is None else value)}</td>'


def table_html(df: pd.DataFrame, caption: str = "", highlight: int | None = None) -> str:
    """A sortable table of `df` (index dropped; at most MAX_TABLE_ROWS rows); row `highlight` marked best."""
    if df is None or df.empty:
        return ""
    note = ""
    if len(df) > MAX_TABLE_ROWS:
        note = f" (first {MAX_TABLE_ROWS} of {len(df)} rows; all rows are in the run directory)"
        df = df.head(MAX_TABLE_ROWS)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    head = "".join(f'<th class="{"" if num else "txt"}">{esc(c)}</th>' for c, num in zip(df.columns, numeric))
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cls = ' class="best"' if highlight is not None and i == highlight else ""
        body.append(f"<tr{cls}>" + "".join(_cell(v) for v in row) + "</tr>")
    cap = f"<figcaption>{esc(caption)}{esc(note)}</figcaption>" if caption or note else ""
    return (f'<div class="tablewrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{cap}')


def pivot_layers(df: pd.DataFrame, columns: list[str], index: str = "layer") -> pd.DataFrame:
    """Wide per-layer table: one row per layer, one column per combination of `columns` (mean of duplicates),
    with the relative depth beside the layer."""
    df = df[pd.to_numeric(df["value"], errors="coerce").notna()].copy()
    if df.empty:
        return df
    df["_col"] = df[columns].astype(str).agg(" | ".join, axis=1) if columns else "value"
    wide = df.pivot_table(index=index, columns="_col", values="value", aggfunc="mean").sort_index()
    wide.columns.name = None
    wide = wide.reset_index()
    if index == "layer" and len(wide):
        wide.insert(1, "depth", wide["layer"] / max(int(wide["layer"].max()), 1))
    return wide


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; (0, 0) for anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return 0, 0
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def figure_id(run: str, stem: str) -> str:
    """The HTML id of a run's figure (a findings' link points at it)."""
    return anchor(f"fig-{run}-{stem}")


def figure_html(png: bytes | Path, caption: str, alt: str = "", fid: str = "") -> str:
    """<figure> with the PNG embedded as a base64 data URI (the report opens offline); a very tall figure
    (a heatmap with many rows) scrolls inside a box instead of stretching the page. `fid`: its HTML id."""
    data = png.read_bytes() if isinstance(png, Path) else png
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    width, height = png_size(data)
    img = f'<img src="{uri}" alt="{esc(alt or caption)}">'
    if width and height > 1.4 * width:
        img = f'<div class="tall">{img}</div>'
        caption += " (scroll inside the box)"
    ident = f' id="{esc(fid)}"' if fid else ""
    return f"<figure{ident}>{img}<figcaption>{esc(caption)}</figcaption></figure>"


def figure_link(href: str) -> str:
    return f' <a class="figlink" href="#{esc(href)}">figure</a>' if href else ""


def tile(key: str, value: str, detail: str = "", href: str = "", kind: str = "") -> str:
    """A summary tile: label, value, the evidence line and a link to the figure the claim comes from; `kind`
    (the claim's kind) becomes a CSS class, so inconclusive claims look different."""
    cls = f" {anchor(kind)}" if kind else ""
    return (f'<div class="tile{cls}"><div class="k">{esc(key)}</div><div class="v">{esc(value)}</div>'
            f'<div class="d">{esc(detail)}{figure_link(href)}</div></div>')


def kv_html(pairs: list[tuple[str, str]]) -> str:
    return '<div class="kv">' + "".join(f"<div>{esc(k)}</div><div>{esc(v)}</div>" for k, v in pairs) + "</div>"


def page(title: str, subtitle: str, meta: str, sections: list[tuple[str, str, list[str]]]) -> str:
    """Full HTML document: header, table of contents (sections and their h3 sub-headings), sections."""
    toc, body = [], []
    for heading, content, subs in sections:
        sid = anchor(heading)
        toc.append(f'<a href="#{sid}">{esc(heading)}</a>')
        toc.extend(f'<a class="sub" href="#{anchor(heading + "-" + s)}">{esc(s)}</a>' for s in subs)
        body.append(f'<section id="{sid}"><h2>{esc(heading)}</h2>{content}</section>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style></head>
<body>
<header class="top"><div class="wrap"><div><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div></div>
<div class="meta">{esc(meta)}</div></div></header>
<div class="wrap layout">
<nav class="toc"><div class="label">Contents</div>{"".join(toc)}</nav>
<main>{"".join(body)}</main>
</div>
<footer>Written by sftscope from the run directories' tables and figures only; no model was loaded.</footer>
<script>{JS}</script>
</body></html>
"""


def sub_heading(section: str, text: str) -> str:
    """An h3 the table of contents links to (its id is derived from the section and the text)."""
    return f'<h3 id="{anchor(section + "-" + text)}">{esc(text)}</h3>'
