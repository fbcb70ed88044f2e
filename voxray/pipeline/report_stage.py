"""``voxray report``: read the run's outputs and write the self-contained report/index.html.

Runs on the driver without Ray (the stage table marks it ``needs_ray=False``); every table
is optional, so the report can be written after any subset of stages.
"""

from __future__ import annotations

from voxray.log import get_logger
from voxray.pipeline.context import REPORT, RunContext, StageResult
from voxray.pipeline.front_ends import base_front_end
from voxray.pipeline.model_ref import base_model
from voxray.report.build import build_report

log = get_logger(__name__)
STAGE = "report"
INDEX = f"{REPORT}/index.html"


def run_report(ctx: RunContext) -> StageResult:
    report = build_report(ctx.out, ctx.cfg, base_model(ctx).name, base_front_end(ctx))
    ctx.out.write_text(INDEX, report.html)
    log.info(
        "report: %s (%d sections, %d images, %.1f MB)",
        ctx.out.uri(INDEX),
        len(report.sections),
        report.images,
        len(report.html) / 1e6,
    )
    return StageResult(
        STAGE, inputs=1, outputs=1, info={"sections": report.sections, "images": report.images}
    ).check()
