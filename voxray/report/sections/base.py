"""The report's section registry and what every section is filled from.

A section module registers itself with ``@section(key, title, intro, order)`` on its fill
function, the way attribution methods register with ``voxray.attribution.base.register``;
``voxray.report.build`` renders the registered sections in ``order``. A fill function reads
the ``ReportContext`` (the loaded outputs, the config, the base model and its front-end) and
appends its tables, figures and verdicts to the ``html.Section`` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from voxray.config import VoxrayConfig
from voxray.features import FeatureExtractor, FrontEndSpec
from voxray.log import get_logger
from voxray.report.html import Block, Note, Section, Table
from voxray.report.load import RunOutputs
from voxray.report.metrics import trial_lists
from voxray.report.plots import variant_name

log = get_logger(__name__)


@dataclass
class ReportContext:
    """What the sections read: the loaded outputs, the run's config, the base model's name
    and front-end, the trial lists with verification results and the bins' Hz axis."""

    out: RunOutputs
    cfg: VoxrayConfig
    base: str
    front_end: FrontEndSpec
    extractor: FeatureExtractor = field(init=False)
    lists: list[str] = field(init=False)
    #: the fbank bins' centre frequencies; None where the front-end has none (MFCC).
    hz: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        self.extractor = self.front_end.build()
        self.lists = trial_lists(self.out.metrics, self.cfg.corpus.trial_lists)
        try:
            self.hz = self.extractor.bin_frequencies(self.cfg.corpus.sample_rate)
        except ValueError as exc:
            log.warning("report: no Hz axis for the frequency profiles: %s", exc)
            self.hz = None

    def curves(self, experiment: str) -> pd.DataFrame:
        """The curves/ rows of ``experiment`` (an empty frame with the columns where none)."""
        c = self.out.curves
        if c is None or c.empty:
            return pd.DataFrame(columns=["experiment", "model", "method", "variant", "x", "y"])
        return c[c["experiment"] == experiment]

    def skips(self, s: Section, part: str) -> bool:
        """Notes for what the evaluate ``part`` left out and why; True when it skipped it all."""
        record = self.out.stages.get(f"evaluate.{part}", {})
        partly = record.get("partly_skipped")
        for what, why in sorted(partly.items()) if isinstance(partly, dict) else ():
            s.blocks.append(Note(f"Left out of this run: {what} ({why}).", "missing"))
        if record.get("skipped"):
            s.blocks.append(Note(f"Skipped in this run: {record['skipped']}.", "missing"))
            return True
        return False


Fill = Callable[[ReportContext, Section], None]


@dataclass(frozen=True)
class SectionSpec:
    """A registered section: its anchor id, heading, intro and place on the page."""

    key: str
    title: str
    #: what the reader is looking at; formatted with the run's config as ``cfg``.
    intro: str
    order: int
    fill: Fill


SECTIONS: dict[str, SectionSpec] = {}


def section(key: str, title: str, intro: str, order: int) -> Callable[[Fill], Fill]:
    """Decorator registering a fill function as the section ``key``."""

    def register(fill: Fill) -> Fill:
        if key in SECTIONS:
            raise ValueError(f"report section {key!r} registered twice")
        if any(s.order == order for s in SECTIONS.values()):
            raise ValueError(f"report section {key!r}: order {order} is taken")
        SECTIONS[key] = SectionSpec(key, title, intro, order, fill)
        return fill

    return register


def in_page_order() -> list[SectionSpec]:
    return sorted(SECTIONS.values(), key=lambda s: s.order)


def missing(what: str) -> Note:
    """The note a section shows instead of what the run did not produce."""
    return Note(f"Not computed in this run: {what}.", "missing")


def table_or_missing(
    frame: pd.DataFrame,
    what: str,
    caption: str = "",
    highlight: str | None = None,
    decimals: int | None = None,
) -> Block:
    """``frame`` as a table, or the note that the run did not produce ``what`` where it is
    empty."""
    return Table(frame, caption, highlight, decimals) if not frame.empty else missing(what)


def panels(
    frame: pd.DataFrame, title: str, by: tuple[str, ...] = ("model", "variant")
) -> list[tuple[str, pd.DataFrame]]:
    """One panel per distinct combination of ``by`` (only the columns that vary are named);
    none for an empty frame."""
    if frame.empty:
        return []
    varying = [c for c in by if frame[c].nunique() > 1]
    if not varying:
        return [(title, frame)]
    return [
        (f"{title}: {', '.join(variant_name(str(k)) for k in key)}", group)
        for key, group in frame.groupby(varying, sort=True)
    ]
