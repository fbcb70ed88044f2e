"""The run's resolved configuration, credentials redacted."""

from __future__ import annotations

from voxray.config import dump_yaml
from voxray.log import redact
from voxray.report.html import Preformatted, Section
from voxray.report.sections.base import ReportContext, section

TITLE = "Configuration"
INTRO = "The resolved configuration of the run (credentials redacted)."


@section("config", TITLE, INTRO, order=180)
def config(ctx: ReportContext, s: Section) -> None:
    s.blocks.append(Preformatted(redact(dump_yaml(ctx.cfg))))
