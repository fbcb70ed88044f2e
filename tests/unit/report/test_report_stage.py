"""run_report end to end on a synthetic output folder: sections, Table 2 numbers, images,
escaping of hostile ids and paths, no credentials, and absent or broken tables."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from voxray import schema
from voxray.config import MaskCondition, VoxrayConfig, replace
from voxray.io.storage import Storage
from voxray.pipeline.context import RunContext
from voxray.pipeline.report_stage import INDEX, run_report
from voxray.testing.synthetic_report import write_synthetic_outputs

SCRIPT = "<script>alert(1)</script>"
HOSTILE_UTT = 'id10002/v&<>"/00007.wav'
SECRET = "FAKEsecretKEY0123456789abcdefghij"
HEADINGS = (
    "Run: stages",
    "Speaker verification",
    "Table 2 of Zhang et al. 2023",
    "Tables 3-4 of Lehmann & Stadelmann 2020",
    "Figs. 2-3 of Lehmann & Stadelmann 2020",
    "Speaker identification",
    "frequency-importance",
    "Attribution heat maps",
    "Maps at several mask thresholds",
    "Trial explanations",
    "deletion and insertion",
    "Table 2 of Li et al. 2022",
    "Fig. 4 of Li et al. 2022",
    "gender experiment",
    "Sanity checks",
    "Which method to trust here",
    "PCA and t-SNE",
    "Training",
    "Ray Tune",
    "Quarantine",
    "Configuration",
)


def _plant_hostile_rows(out: Storage, cfg: VoxrayConfig) -> None:
    out.write_table(
        "quarantine.parquet/attribute-0.parquet",
        schema.table(
            schema.QUARANTINE,
            {
                "path": [f"wav/{SCRIPT}/00001.wav", f"{HOSTILE_UTT} [saliency/classification]"],
                "stage": ["manifest", "attribute"],
                "reason": [f"cannot decode; endpoint {SECRET} refused", "non-finite attribution"],
                "cause": ["input", "compute"],
            },
        ),
    )
    bins, frames = cfg.features.num_mel_bins, 40
    rng = np.random.default_rng(1)
    out.write_table(
        "features/kind=fbank/part-hostile.parquet",
        schema.table(
            schema.FEATURES,
            {
                "utt_id": [HOSTILE_UTT],
                "num_frames": [frames],
                "num_bins": [bins],
                "values": schema.floats_column([rng.standard_normal((frames, bins))]),
            },
        ),
    )
    for method in ("saliency", "layer_cam", "integrated_gradients"):
        out.write_table(
            f"attributions/method={method}/part-hostile.parquet",
            schema.table(
                schema.ATTRIBUTIONS,
                {
                    "utt_id": [HOSTILE_UTT],
                    "model": [cfg.train.name],
                    "pathway": ["classification"],
                    "params": ["{}"],
                    "target": [0],
                    "num_frames": [frames],
                    "num_bins": [bins],
                    "values": schema.floats_column([rng.random((frames, bins))]),
                    "freq_profile": schema.floats_column([rng.random(bins)]),
                    "completeness_error": [None],
                },
            ),
        )


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, dict, pd.DataFrame, VoxrayConfig]:
    root = tmp_path_factory.mktemp("run")
    cfg = replace(
        VoxrayConfig(),
        out=str(root),
        profile="demo<b>",
        **{
            "corpus.s3": replace(
                VoxrayConfig().corpus.s3, endpoint_url=f"https://minio:{SECRET}@store:9000"
            ),
            "report.heatmap_utterances": 2,
        },
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        ctx = RunContext(cfg)
        metrics = write_synthetic_outputs(ctx.out, cfg)
        _plant_hostile_rows(ctx.out, cfg)
        result = run_report(ctx)
    html = (root / "report" / "index.html").read_text()
    return html, result.as_dict(), metrics, cfg


def test_report_written_with_every_section(report, html_tables) -> None:
    html, info, _, _ = report
    headings = html_tables(html).headings
    for expected in HEADINGS:
        assert any(expected in h for h in headings), expected
    assert info["inputs"] == info["outputs"] == 1 and len(info["sections"]) == len(HEADINGS)
    assert 'class="problem"' not in html  # every section rendered, every table read


def test_table2_rows_and_numbers(report, html_tables) -> None:
    html, _, metrics, cfg = report
    rows = html_tables(html).tables["reliability"][0]
    body = {r[0]: r[1:] for r in rows[2:]}
    lst = "veri_test2.txt"
    m = metrics[(metrics["list"] == lst) & (metrics["scorer"] == "cosine")]

    def pct(model_filter, condition: str) -> str:
        sel = m[model_filter(m["model"]) & (m["condition"] == condition) & (m["metric"] == "eer")]
        assert len(sel) == 1
        return f"{100 * sel['value'].iloc[0]:.2f}"

    base = cfg.train.name
    is_base = lambda s: s == base  # noqa: E731
    assert body["None (clean)"][0] == pct(is_base, "none") and body["None (clean)"][-1] == "3.48"
    labels = {
        "integrated_gradients/traversal/product": ("Integrated Gradients", "4.21"),
        "integrated_gradients/traversal/threshold:signed@0.1": (
            "Integrated Gradients + mask(0.1, signed)",
            "4.29",
        ),
        "gradient_shap/traversal/product": ("GradientShap", "4.55"),
    }
    # the default design: each Traversal condition followed by its shuffled-map control
    assert [c.name for c in cfg.mask.conditions] == [
        n for name in labels for n in (name, f"{name}/shuffled")
    ]

    def retrained_on(masked: str) -> str:
        return m.loc[(m["condition"] == masked) & (m["model"] != base), "model"].iloc[0]

    for cond in cfg.mask.conditions[::2]:
        label, seed = labels[cond.name]
        masked = f"masked:{cond.name}"
        retrained = retrained_on(masked)
        is_retrained = lambda s, r=retrained: s == r  # noqa: E731
        cells = body[label]
        assert cells[0] == pct(is_base, masked)  # base, masked test
        assert cells[2] == pct(is_retrained, masked)  # retrained, masked test
        assert cells[4] == pct(is_retrained, "none")  # retrained, clean test
        assert cells[-1] == seed
        # its own shuffled-map control beside it: the base and its retrained model
        shuffled = f"{masked}/shuffled"
        ctl = retrained_on(shuffled)
        assert cells[6] == pct(is_base, shuffled) and cells[7] == pct(
            lambda s, c=ctl: s == c, shuffled
        )
    assert len(body) == 4  # the control sits beside its condition, not in a row of its own


def test_every_image_is_an_embedded_png(report) -> None:
    html, info, _, _ = report
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert len(sources) == info["images"] >= 10
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        PILImage.open(io.BytesIO(png)).verify()
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_hostile_strings_are_escaped(report) -> None:
    html, _, _, _ = report
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "id10002/v&amp;&lt;&gt;&quot;/00007.wav" in html
    assert HOSTILE_UTT not in html and "demo<b>" not in html and "demo&lt;b&gt;" in html


def test_no_credentials_in_the_report(report) -> None:
    html, _, _, _ = report
    assert SECRET not in html
    assert "https://***@store:9000" in html  # the endpoint in the embedded config, redacted
    assert "endpoint *** refused" in html


def test_verdicts_are_computed(report) -> None:
    html, _, _, _ = report
    verdicts = re.findall(
        r'<p class="verdict ([a-z-]+)"><span class="badge">([a-z ]+)</span> <strong>([^<]*)', html
    )
    claims = {unescape(c).split(":")[0]: (status, css) for css, status, c in verdicts}
    assert set(claims) == {
        "Zhang et al. 2023",
        "Li et al. 2022",
        "Sarvaš 2021",
        "Lehmann & Stadelmann 2020",
        "Lehmann & Stadelmann 2020 (Fig. 2)",
        "Lehmann & Stadelmann 2020 (Fig. 3)",
    }
    # the synthetic run: AHC-average 3.20% vs Mean-CosSim 3.40% EER on veri_test2.txt
    assert (
        "veri_test2.txt: AHC-Average vs Mean-CosSim EER: 3.2% [3.14, 3.26] vs 3.4% [3.33, 3.47]"
        in (unescape(html))
    )
    assert all(status != "not computed" for status, _ in claims.values())


def test_absent_tables_are_noted_not_fatal(tmp_path: Path) -> None:
    cfg = replace(VoxrayConfig(), out=str(tmp_path))
    result = run_report(RunContext(cfg))
    html = (tmp_path / INDEX).read_text()
    assert result.info["images"] == 0
    assert html.count("Not computed in this run") >= 12
    assert "Nothing was quarantined" in html and "not computed" in html


def test_unreadable_table_is_reported(tmp_path: Path) -> None:
    cfg = replace(VoxrayConfig(), out=str(tmp_path))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    (tmp_path / "_stages").mkdir()
    (tmp_path / "_stages" / "manifest.json").write_text(
        json.dumps({"stage": "manifest", "inputs": 3, "outputs": 3})
    )
    run_report(RunContext(cfg))
    html = (tmp_path / INDEX).read_text()
    assert 'class="problem">Could not read metrics' in html
    assert '<th scope="row">manifest</th>' in html


def test_outputs_kept_stale_are_marked_in_the_run_section(tmp_path: Path) -> None:
    """A stage reused with --keep-stale (issue 29) says so, with what changed."""
    cfg = replace(VoxrayConfig(), out=str(tmp_path))
    (tmp_path / "_stages").mkdir()
    for name, extra in (
        ("embed", {}),
        ("attribute", {"kept_stale": ["attribution.ig_steps: 16 -> 64"]}),
    ):
        record = {"stage": name, "inputs": 2, "outputs": 2, **extra}
        (tmp_path / "_stages" / f"{name}.json").write_text(json.dumps(record))
    run_report(RunContext(cfg))
    html = unescape((tmp_path / INDEX).read_text())
    assert (
        "Stage attribute: outputs reused although they may be stale: attribution.ig_steps: 16 -> 64"
        in html
    )
    assert "Stage embed: outputs reused" not in html


def test_mfcc_run_has_no_hz_axis(tmp_path: Path) -> None:
    cfg = replace(
        VoxrayConfig(),
        out=str(tmp_path),
        **{
            "model.feature_kind": "mfcc",
            "report.tsne": False,
            "report.heatmap_utterances": 0,
            "mask.conditions": (MaskCondition("saliency"),),
        },
    )
    write_synthetic_outputs(Storage(str(tmp_path)), cfg)
    run_report(RunContext(cfg))
    html = (tmp_path / INDEX).read_text()
    assert "the attributions are not over mel filterbank bins" in html


def test_a_failing_section_leaves_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxray.report.sections import verification

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("det exploded")

    monkeypatch.setattr(verification, "det_plot", broken)
    cfg = replace(
        VoxrayConfig(), out=str(tmp_path), **{"report.tsne": False, "report.heatmap_utterances": 0}
    )
    write_synthetic_outputs(Storage(str(tmp_path)), cfg)
    run_report(RunContext(cfg))
    html = (tmp_path / INDEX).read_text()
    assert "This section could not be rendered: RuntimeError: det exploded" in html
    assert "Table 2 of Zhang et al. 2023" in html and "GradientShap" in html


def test_report_from_s3_outputs(s3_endpoint: str, html_tables) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="voxray-out")
    cfg = replace(
        VoxrayConfig(),
        out="s3://voxray-out/run",
        **{
            "corpus.s3": replace(VoxrayConfig().corpus.s3, endpoint_url=s3_endpoint),
            "report.tsne": False,
            "report.heatmap_utterances": 1,
        },
    )
    ctx = RunContext(cfg)
    write_synthetic_outputs(ctx.out, cfg)
    result = run_report(ctx)
    html = ctx.out.read_text(INDEX)
    tables = html_tables(html).tables
    assert tables["reliability"][0][3][0] == "Integrated Gradients"
    training = html.split('<section id="training">')[1].split("</section>")[0]
    assert (
        "<img " in training
    )  # the history plot: models/ecapa/history.parquet found by listing the bucket
    assert result.info["images"] >= 8 and 'class="problem"' not in html


def test_interval_figures_and_threshold_maps_are_drawn(report) -> None:
    """Fig. 4 of Li et al. 2022 (B-A-B curves), Table 2's Top-1 with its bars, pixel
    flipping with its bars and Fig. 6 of Zhang et al. 2023 (maps at the configured taus)."""
    html, _, _, cfg = report
    parts = dict(re.findall(r'<section id="([^"]+)"(.*?)</section>', html, re.S))
    for key in ("thresholds", "mixtures", "multispeaker", "flipping"):
        assert "<img" in parts[key], key
    taus = sorted(
        {c.threshold for c in cfg.mask.conditions if c.rule == "threshold"} | set(cfg.tune.taus)
    )
    assert f"at {taus[:4]}" in parts["thresholds"]
    assert "95% interval" in parts["flipping"] and "Layer-CAM" in parts["mixtures"]
