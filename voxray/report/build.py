"""Assemble the report: the registered sections, in page order, from the run's outputs to an
HTML page.

Each section (``voxray.report.sections``, one module per experiment) turns the loaded outputs
into its part of the page: a sentence on what the reader is looking at, tables, figures and,
where a seed paper makes a claim, the computed verdict. A section whose inputs the run did not
produce says so ("not computed in this run") instead of failing, so a report can be written
after any subset of stages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType

from voxray import __version__
from voxray.config import VoxrayConfig
from voxray.features import FrontEndSpec, kaldi_front_end
from voxray.io.storage import Storage
from voxray.log import get_logger
from voxray.report.html import Note, Section, render_document
from voxray.report.load import load_outputs
from voxray.report.names import order_lists
from voxray.report.sections import ReportContext, SectionSpec, in_page_order

log = get_logger(__name__)
TITLE = "voxray report"


@dataclass
class Report:
    html: str
    sections: list[str]
    images: int


def _corpus_facts(ctx: ReportContext) -> list[tuple[str, str]]:
    """The manifest's size and splits, and the trial lists' sizes."""
    m = ctx.out.manifest
    if m is None or m.empty:
        facts = [("Corpus", "no manifest.parquet")]
    else:
        hours = float(m["duration_s"].sum()) / 3600 if "duration_s" in m else float("nan")
        splits = m["split"].value_counts().to_dict() if "split" in m else {}
        facts = [
            (
                "Corpus",
                f"{len(m):,} utterances, {m['speaker_id'].nunique():,} speakers, {hours:.2f} h",
            ),
            ("Splits", ", ".join(f"{k}: {v:,}" for k, v in sorted(splits.items()))),
        ]
    if ctx.out.trials is not None and not ctx.out.trials.empty:
        counts = ctx.out.trials["list"].astype(str).value_counts()
        lists = order_lists(counts.index, ctx.cfg.corpus.trial_lists)
        facts.append(("Trials", ", ".join(f"{k}: {counts[k]:,}" for k in lists)))
    return facts


def _facts(ctx: ReportContext) -> list[tuple[str, str]]:
    """The page header: model, profile, corpus, stage time, output folder, generation time."""
    cfg = ctx.cfg
    model = (
        f"{ctx.base} ({cfg.model.arch}, C={cfg.model.channels}, {cfg.model.embedding_dim}-d, "
        f"{ctx.front_end.name} front-end)"
    )
    top = {k: v for k, v in ctx.out.stages.items() if "." not in k}
    seconds = sum(
        float(v["seconds"]) for v in top.values() if isinstance(v.get("seconds"), (int, float))
    )
    return [
        ("Model", model),
        ("Profile", cfg.profile),
        *_corpus_facts(ctx),
        (
            "Stage time",
            f"{seconds / 60:.1f} min over {len(top)} stages" if top else "no stage markers",
        ),
        ("Output", cfg.out),
        ("Generated", f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} by voxray {__version__}"),
    ]


def _renamed_code(exc: Exception) -> bool:
    """True for an error that says the code itself is wrong (a renamed section function, helper
    or module attribute), which must fail the report rather than become a note; data of an
    unexpected shape raises on the data (a frame, a value), not on a module or the context."""
    if isinstance(exc, (NameError, ImportError)):
        return True
    return isinstance(exc, AttributeError) and isinstance(exc.obj, (ModuleType, ReportContext))


def _render(spec: SectionSpec, ctx: ReportContext) -> Section:
    """The section ``spec`` filled from ``ctx``; a failure becomes a note in it (logged with
    its traceback) unless it says the code is wrong."""
    s = Section(spec.key, spec.title, spec.intro.format(cfg=ctx.cfg))
    try:
        spec.fill(ctx, s)
    except Exception as exc:  # one section must not cost the whole report
        if _renamed_code(exc):
            raise
        log.exception("report: section %s failed", spec.key)
        s.blocks.append(
            Note(f"This section could not be rendered: {type(exc).__name__}: {exc}", "problem")
        )
    return s


def build_report(
    out: Storage, cfg: VoxrayConfig, base: str, front_end: FrontEndSpec | None = None
) -> Report:
    """Read the outputs under ``out`` and render the report (``base``: the base model's name,
    ``front_end``: its input representation, which labels the axes; by default the Kaldi
    front-end ``cfg`` trains on).

    A section that fails to render (data of an unexpected shape) becomes a note naming the
    error, logged with its traceback; the other sections are still written.
    """
    front_end = front_end or kaldi_front_end(cfg.model.feature_kind, cfg.features)
    loaded = load_outputs(
        out,
        base,
        front_end.name,
        cfg.report.max_points,
        cfg.report.heatmap_utterances,
        seed=cfg.seed,
    )
    ctx = ReportContext(loaded, cfg, base, front_end)
    sections = [_render(spec, ctx) for spec in in_page_order()]
    html = render_document(TITLE, _facts(ctx), sections)
    return Report(html, [s.title for s in sections], sum(s.images for s in sections))
