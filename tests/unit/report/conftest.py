"""Fixtures for the report tests: metrics frames built by hand, and an HTML table reader."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd
import pytest

from voxray.schema import MetricRow, metrics_table


def metrics_frame(rows: list[tuple | MetricRow]) -> pd.DataFrame:
    """metrics/ as the report reads it, from ``MetricRow``s or (model, condition, list,
    scorer, metric, value) tuples."""
    return metrics_table(r if isinstance(r, MetricRow) else MetricRow(*r) for r in rows).to_pandas()


class TableReader(HTMLParser):
    """Collects, per <section id=...>, its tables as lists of rows of cell texts (unescaped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.section = ""
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.headings: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.section = dict(attrs).get("id") or ""
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "h2":
            self._in_h2 = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self.section][-1].append(self._row)
            self._row = None
        elif tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_h2:
            self.headings[-1] += data


def read_tables(html: str) -> TableReader:
    reader = TableReader()
    reader.feed(html)
    return reader


@pytest.fixture
def make_metrics():
    return metrics_frame


@pytest.fixture
def html_tables():
    return read_tables
