"""One self-contained HTML page from report sections: inline CSS, images and audio as data URIs,
no scripts and no external requests, so the file can be mailed, archived or opened offline.

Every string that comes from the data (ids, paths, config values, method names) passes
through ``text()``: secrets from the environment are redacted, then HTML is escaped.
Numbers are formatted by their column's unit: ``(%)`` columns with 2 decimals, minDCF
with 4, AUCs with 3, counts as integers.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence, Union

import numpy as np
import pandas as pd

from voxray.log import redact
from voxray.report.verdicts import Verdict

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: text cells longer than this may wrap (paths, reasons); shorter ones stay on one line.
WRAP_CHARS = 48


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""
    #: a boolean column whose True rows are highlighted (e.g. flagged sanity checks).
    highlight: str | tuple[str, ...] | None = None
    #: show every non-integer number with this many decimals (instead of by column unit).
    decimals: int | None = None


@dataclass(frozen=True)
class Image:
    png: bytes
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Note:
    text: str
    kind: Literal["note", "missing", "problem"] = "note"


@dataclass(frozen=True)
class Preformatted:
    text: str
    caption: str = ""


@dataclass(frozen=True)
class Players:
    """Audio players (FLAC bytes, embedded as data URIs) in a table: one row per label, one
    player per column; None leaves a cell empty."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[bytes | None, ...]], ...]
    caption: str = ""


Block = Union[Table, Image, Note, Preformatted, Players]


@dataclass
class Section:
    """A heading, a sentence on what the reader looks at, verdicts on seed claims, blocks."""

    key: str
    title: str
    intro: str
    blocks: list[Block] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(isinstance(b, Image) for b in self.blocks)


def text(value: Any) -> str:
    """Data text made safe for HTML: secrets redacted, then escaped (quotes included)."""
    return html.escape(redact(str(value)), quote=True)


def format_value(label: str, value: Any, decimals: int | None = None) -> str:
    """A cell's text by its column label's unit (see the module doc), or with ``decimals``
    when given; '—' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "\u221e" if v > 0 else "-\u221e"
        if decimals is not None:
            return f"{v:.{decimals}f}"
        if "(%)" in label:
            return f"{v:.2f}"
        if "minDCF" in label:
            return f"{v:.4f}"
        if "AUC" in label:
            return f"{v:.3f}"
        if label in ("Seconds",):
            return f"{v:,.1f}"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _numeric_columns(frame: pd.DataFrame) -> list[bool]:
    """Per column: True when every present value is a number (header and cells right-aligned)."""
    out = []
    for i in range(frame.shape[1]):
        values = [
            v
            for v in frame.iloc[:, i].tolist()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        ]
        out.append(bool(values) and all(_is_number(v) for v in values))
    return out


def _th(label: Any, numeric: bool) -> str:
    return f'<th class="num">{text(label)}</th>' if numeric else f"<th>{text(label)}</th>"


def _header_rows(frame: pd.DataFrame) -> str:
    index_names = [n if n is not None else "" for n in frame.index.names]
    cols = list(frame.columns)
    numeric = _numeric_columns(frame)
    if isinstance(frame.columns, pd.MultiIndex) and frame.columns.nlevels == 2:
        top = "".join(f'<th rowspan="2" class="idx">{text(n)}</th>' for n in index_names)
        groups: list[tuple[str, int]] = []
        for g, _ in cols:
            if groups and groups[-1][0] == g:
                groups[-1] = (g, groups[-1][1] + 1)
            else:
                groups.append((g, 1))
        top += "".join(f'<th colspan="{n}" class="group">{text(g)}</th>' for g, n in groups)
        sub = "".join(_th(c, n) for (_, c), n in zip(cols, numeric, strict=True))
        return f"<tr>{top}</tr><tr>{sub}</tr>"
    labels = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in cols]
    return (
        "<tr>"
        + "".join(f'<th class="idx">{text(n)}</th>' for n in index_names)
        + "".join(_th(c, n) for c, n in zip(labels, numeric, strict=True))
        + "</tr>"
    )


def render_table(table: Table) -> str:
    frame = table.frame
    flags = (
        frame[table.highlight].astype(bool).tolist()
        if table.highlight in frame.columns
        else [False] * len(frame)
    )
    body = []
    for (idx, row), flagged in zip(frame.iterrows(), flags, strict=True):
        keys = idx if isinstance(idx, tuple) else (idx,)
        cells = "".join(f'<th scope="row">{text(k)}</th>' for k in keys)
        for col, value in zip(frame.columns, row.tolist(), strict=True):
            label = col[-1] if isinstance(col, tuple) else str(col)
            shown = format_value(label, value, table.decimals)
            css = (
                ' class="num"'
                if _is_number(value)
                else ' class="wrap"'
                if len(shown) > WRAP_CHARS
                else ""
            )
            cells += f"<td{css}>{text(shown)}</td>"
        body.append(f'<tr class="flag">{cells}</tr>' if flagged else f"<tr>{cells}</tr>")
    caption = f"<caption>{text(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead>{_header_rows(frame)}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if the bytes are not a PNG."""
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def render_image(image: Image) -> str:
    width, height = png_size(image.png)
    data = base64.b64encode(image.png).decode("ascii")
    caption = f"<figcaption>{text(image.caption)}</figcaption>" if image.caption else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{text(image.alt)}" '
        f'width="{width}" height="{height}">{caption}</figure>'
    )


def render_players(players: Players) -> str:
    def cell(clip: bytes | None) -> str:
        if clip is None:
            return "<td></td>"
        data = base64.b64encode(clip).decode("ascii")
        src = f"data:audio/flac;base64,{data}"
        return f'<td><audio controls preload="none" src="{src}"></audio></td>'

    head = "".join(f"<th>{text(c)}</th>" for c in ("", *players.columns))
    rows = "".join(
        f"<tr><th>{text(label)}</th>{''.join(cell(c) for c in clips)}</tr>"
        for label, clips in players.rows
    )
    caption = f"<caption>{text(players.caption)}</caption>" if players.caption else ""
    return f'<table class="players">{caption}<tr>{head}</tr>{rows}</table>'


def render_verdict(v: Verdict) -> str:
    css = v.status.replace(" ", "-")
    return (
        f'<p class="verdict {css}"><span class="badge">{text(v.status)}</span> '
        f'<strong>{text(v.claim)}</strong><br><span class="detail">{text(v.detail)}</span></p>'
    )


def render_block(block: Block) -> str:
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Image):
        return render_image(block)
    if isinstance(block, Players):
        return render_players(block)
    if isinstance(block, Preformatted):
        caption = f'<p class="caption">{text(block.caption)}</p>' if block.caption else ""
        return f"{caption}<pre>{text(block.text)}</pre>"
    return f'<p class="{block.kind}">{text(block.text)}</p>'


def render_section(section: Section) -> str:
    parts = [
        f'<section id="{text(section.key)}"><h2>{text(section.title)}</h2>',
        f'<p class="intro">{text(section.intro)}</p>',
    ]
    parts += [render_verdict(v) for v in section.verdicts]
    parts += [render_block(b) for b in section.blocks]
    parts.append('<p class="top"><a href="#contents">back to contents</a></p></section>')
    return "\n".join(parts)


def render_document(
    title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]
) -> str:
    """The whole page: header with the run's facts, contents, sections."""
    fact_html = "".join(f"<div><dt>{text(k)}</dt><dd>{text(v)}</dd></div>" for k, v in facts)
    contents = []
    for s in sections:
        badges = "".join(
            f' <span class="mini {v.status.replace(" ", "-")}">{text(v.status)}</span>'
            for v in s.verdicts
        )
        contents.append(f'<li><a href="#{text(s.key)}">{text(s.title)}</a>{badges}</li>')
    body = "\n".join(render_section(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{text(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header><h1>{text(title)}</h1><dl class="facts">{fact_html}</dl></header>
<nav id="contents"><h2>Contents</h2><ol>{"".join(contents)}</ol></nav>
{body}
</main>
</body>
</html>
"""


CSS = """
:root { --ink: #1d2330; --muted: #5b6473; --line: #e2e5ea; --head: #eef1f5; --accent: #2f5d8a; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: var(--ink);
  font-family: "DejaVu Sans", "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 14px; line-height: 1.5; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 40px 60px; background: #fff;
  min-height: 100vh; }
header h1 { margin: 0 0 12px; font-size: 26px; color: var(--accent); }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));
  gap: 6px 18px; margin: 0; padding: 12px 16px; background: var(--head); border-radius: 6px; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
nav ol { columns: 2; column-gap: 32px; padding-left: 22px; margin: 4px 0; }
nav a, p.top a { color: var(--accent); text-decoration: none; }
p.top { text-align: right; font-size: 12px; margin: 4px 0 0; }
p.intro { color: var(--muted); margin: 4px 0 10px; max-width: 900px; }
.table-wrap { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13px; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 2px 0 6px; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.wrap { white-space: normal; min-width: 18em; max-width: 42em; overflow-wrap: anywhere; }
thead th { background: var(--head); font-weight: 600; text-align: left; vertical-align: bottom; }
thead th.group { border-bottom: 1px solid #cfd5dd; text-align: center; }
thead th.idx, tbody th { text-align: left; }
thead th.num { text-align: right; }
tbody th { font-weight: 500; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.flag td, tr.flag th { background: #fde8e8; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption, p.caption { color: var(--muted); font-size: 12px; margin: 2px 0 4px; }
pre { background: #f6f7f9; border: 1px solid var(--line); border-radius: 4px;
  padding: 10px 12px; font-size: 12px; overflow: auto; max-height: 480px; }
p.missing { color: var(--muted); font-style: italic; background: #f8f8f8;
  border-left: 3px solid #c9ced6; padding: 6px 10px; }
p.problem { color: #8a1c1c; background: #fdf0f0; border-left: 3px solid #d9534f;
  padding: 6px 10px; }
p.verdict { margin: 8px 0 12px; padding: 8px 12px; border-radius: 6px;
  border: 1px solid var(--line); }
p.verdict .detail { color: var(--muted); font-size: 13px; }
.badge, .mini
{ display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11px; font-weight: 700;
  text-transform: uppercase; letter-spacing: .03em; color: #fff; background: #8a94a3; }
.mini { font-size: 9.5px; padding: 0 6px; vertical-align: middle; }
.holds .badge, .mini.holds { background: #2e7d32; }
.fails .badge, .mini.fails { background: #c62828; }
.inconclusive .badge, .mini.inconclusive { background: #d98c00; }
p.verdict.holds { background: #f1f8f1; } p.verdict.fails { background: #fdf1f1; }
p.verdict.inconclusive { background: #fdf8ec; }
"""
