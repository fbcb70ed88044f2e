"""HTML rendering: escaping and redaction of data text, number formats, grouped headers, images."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from voxray.report.html import (
    Image,
    Note,
    Section,
    Table,
    format_value,
    png_size,
    render_document,
    render_table,
    text,
)
from voxray.report.verdicts import Verdict


@pytest.mark.parametrize(
    "label, value, shown",
    [
        ("EER (%)", 3.4812, "3.48"),
        ("minDCF (p=0.01)", 0.312345, "0.3123"),
        ("Deletion AUC", 0.27, "0.270"),
        ("Trials", 37800.0, "37,800"),
        ("Flagged", True, "yes"),
        ("x", float("nan"), "\u2014"),
        ("x", None, "\u2014"),
        ("x", 0.123456, "0.1235"),
        ("Seconds", 12.345, "12.3"),
        ("n", np.int64(5), "5"),
    ],
    ids=["percent", "mindcf", "auc", "count", "bool", "nan", "none", "other", "seconds", "int"],
)
def test_format_value(label: str, value: object, shown: str) -> None:
    assert format_value(label, value) == shown


def test_format_value_with_fixed_decimals() -> None:
    assert format_value("G-CAM", 49.0, decimals=2) == "49.00"
    assert format_value("x", 3, decimals=2) == "3"


def test_text_escapes_and_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-XYZ")
    out = text('<a href="x">&</a> s3cr3t-value-XYZ https://u:p@host/')
    assert out == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt; *** https://***@host/"


def test_render_table_grouped_header_and_highlight() -> None:
    frame = pd.DataFrame(
        [[3.1, 0.3, True], [4.2, 0.4, False]],
        index=pd.Index(["None", "<IG>"], name="Mask"),
        columns=pd.MultiIndex.from_tuples(
            [("Retrained", "EER (%)"), ("Retrained", "minDCF"), ("Flags", "Flagged")]
        ),
    )
    html = render_table(Table(frame, "cap & more", highlight=("Flags", "Flagged")))
    assert '<th colspan="2" class="group">Retrained</th>' in html
    assert '<th rowspan="2" class="idx">Mask</th>' in html
    assert '<tr class="flag"><th scope="row">None</th><td class="num">3.10</td>' in html
    assert '<th scope="row">&lt;IG&gt;</th>' in html and "<IG>" not in html
    assert "<caption>cap &amp; more</caption>" in html


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), "white").save(buf, format="PNG")
    return buf.getvalue()


def test_png_size_and_rejects_other_bytes() -> None:
    assert png_size(_png(17, 9)) == (17, 9)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + b"\0" * 30)


def test_document_has_no_script_and_embeds_images() -> None:
    png = _png(4, 3)
    section = Section(
        "s<1>",
        "Title <x>",
        "intro & more",
        [Image(png, 'alt "q"'), Note("absent", "missing")],
        [Verdict("claim", "inconclusive", "1 of 2")],
    )
    html = render_document("report", [("Model", "<m>")], [section])
    assert "<script" not in html.lower()
    data = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(data) == png
    assert 'alt="alt &quot;q&quot;"' in html and 'width="4" height="3"' in html
    assert '<section id="s&lt;1&gt;">' in html and '<a href="#s&lt;1&gt;">' in html
    assert 'class="verdict inconclusive"' in html and '<p class="missing">absent</p>' in html
    assert "<dd>&lt;m&gt;</dd>" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
