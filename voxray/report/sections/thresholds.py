"""Maps at several mask thresholds (Fig. 6 of Zhang et al. 2023): a few test utterances'
features masked by the mask stage's threshold rule at each configured tau, so the reader sees
what each threshold keeps of the voiceprint."""

from __future__ import annotations

import numpy as np

from voxray.attribution.heatmap import render_heatmaps
from voxray.config import MaskCondition, VoxrayConfig
from voxray.mask.rules import kept_bins, threshold_mask
from voxray.report.html import Image, Section
from voxray.report.load import Heatmap
from voxray.report.names import method_pathway_name
from voxray.report.sections.base import ReportContext, missing, section

TITLE = "Maps at several mask thresholds (Fig. 6 of Zhang et al. 2023)"
INTRO = (
    "The input features of a few test utterances after the mask stage's threshold rule "
    "(attribution x input with the bins whose normalised attribution is not above tau set to "
    "zero) at each threshold the run configures: the mask conditions' taus and the Tune "
    "sweep's (where it runs). A higher tau keeps fewer, more important bins."
)
#: thresholds drawn at most, and utterances.
MAX_THRESHOLDS = 4
MAX_UTTERANCES = 2


def configured_thresholds(cfg: VoxrayConfig) -> list[float]:
    """The taus the run masks with (threshold-rule conditions, and ``tune.taus`` where the
    Tune sweep runs), at most ``MAX_THRESHOLDS`` of them spread over their range, ascending."""
    swept = set(cfg.tune.taus) if cfg.tune.enabled else set()
    taus = sorted({c.threshold for c in cfg.mask.conditions if c.rule == "threshold"} | swept)
    if len(taus) <= MAX_THRESHOLDS:
        return taus
    picks = np.unique(np.round(np.linspace(0, len(taus) - 1, MAX_THRESHOLDS)).astype(int))
    return [taus[i] for i in picks]


def thresholded_condition(cfg: VoxrayConfig) -> MaskCondition:
    """The condition whose method, pathway and reading the figure uses: the first
    threshold-rule condition, else the first condition read as a threshold."""
    rules = [c for c in cfg.mask.conditions if c.rule == "threshold"]
    return (rules or list(cfg.mask.conditions) or [MaskCondition(rule="threshold")])[0]


def threshold_panels(
    h: Heatmap, key: str, taus: list[float], cond: MaskCondition, how: str
) -> dict[str, np.ndarray]:
    """``{panel title: masked features (T, F)}``: the utterance at each tau, titled with the
    tau and the share of bins it keeps."""
    x, a = h.features, h.maps[key]
    return {
        f"tau = {tau:g} ({kept_bins(a, tau, cond.reading, how).mean():.0%} of bins kept)": (
            threshold_mask(x, a, tau, how, cond.reading)
        )
        for tau in taus
    }


def _map_key(h: Heatmap, cond: MaskCondition) -> str | None:
    """The utterance's map of the condition's method: its pathway's, else any it has."""
    exact = f"{cond.method}/{cond.pathway}"
    if exact in h.maps:
        return exact
    return next((k for k in sorted(h.maps) if k.partition("/")[0] == cond.method), None)


@section("thresholds", TITLE, INTRO, order=75)
def thresholds(ctx: ReportContext, s: Section) -> None:
    cond, taus = thresholded_condition(ctx.cfg), configured_thresholds(ctx.cfg)
    shown = [(h, k) for h in ctx.out.heatmaps if (k := _map_key(h, cond)) is not None]
    if not shown or not taus:
        s.blocks.append(missing(f"no {cond.method} map of a heat-map utterance, or no threshold"))
        return
    shift = ctx.extractor.frame_shift_ms / 1000.0
    for h, key in shown[:MAX_UTTERANCES]:
        hz = ctx.hz if ctx.hz is not None and len(ctx.hz) == h.features.shape[1] else None
        panels = threshold_panels(h, key, taus, cond, ctx.cfg.mask.normalise)
        title = f"utterance {h.utt_id}: {method_pathway_name(key)}, {cond.reading} reading"
        s.blocks.append(
            Image(render_heatmaps(h.features, panels, hz, shift, title), f"{h.utt_id} at {taus}")
        )
