"""Attribution heat maps: the input features and each method's map of a few test utterances,
with players for the audio the attribute stage split by each map (audio/, voxray.mask.audio)."""

from __future__ import annotations

from voxray import schema
from voxray.attribution.heatmap import COLOUR_PERCENTILE, render_heatmaps
from voxray.report.html import Image, Players, Section
from voxray.report.names import method_pathway_name
from voxray.report.sections.base import ReportContext, missing, section

TITLE = "Attribution heat maps"
#: what the reader is looking at (formatted with the run's config as ``cfg``).
INTRO = (
    "Input features and each method's attribution map for up to "
    "{cfg.report.heatmap_utterances} test utterances (those explained by the most methods). "
    "Signed maps are drawn red (positive) to blue (negative) around zero, non-negative maps "
    f"(CAMs) dark to bright; each colour scale ends at the {COLOUR_PERCENTILE:g}th percentile "
    "of |value|, and the few brighter cells saturate (a pointed colour bar end marks them). "
    "Beside each, where the run wrote them, players for the original audio and, per map, the "
    "speech it keeps and the speech it removes: an STFT mask made from the "
    "map at the model's own frames and mel bins (its positive values over their peak), "
    "resynthesised with the original phase."
)


@section("heatmaps", TITLE, INTRO, order=70)
def heatmaps(ctx: ReportContext, s: Section) -> None:
    if not ctx.out.heatmaps:
        s.blocks.append(missing("no attribution maps with matching features"))
        return
    shift = ctx.extractor.frame_shift_ms / 1000.0
    for h in ctx.out.heatmaps:
        hz = ctx.hz if ctx.hz is not None and len(ctx.hz) == h.features.shape[1] else None
        maps = {method_pathway_name(k): v for k, v in h.maps.items()}
        png = render_heatmaps(h.features, maps, hz, shift, f"utterance {h.utt_id}")
        s.blocks.append(Image(png, f"attribution heat maps of {h.utt_id}"))
        if h.original is not None or h.audio:
            s.blocks.append(_players(h.utt_id, h.original, h.audio))


def _players(utt_id: str, original: bytes | None, audio: dict[str, tuple[bytes, bytes]]) -> Players:
    rows = [(f"{schema.AUDIO_ORIGINAL} (all kept)", (original, None))]
    rows += [(method_pathway_name(k), clips) for k, clips in sorted(audio.items())]
    return Players(schema.AUDIO_PARTS, tuple(rows), f"listen: {utt_id}")
