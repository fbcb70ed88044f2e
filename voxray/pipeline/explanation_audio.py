"""Explanations you can listen to: the attribute stage's audio/ output (design.md, "Output
layout").

For the maps ``attribution.audio`` asks for (``report``: the heat maps the report shows,
``voxray.report.load.shown_maps``; ``all``: every explained utterance, method and pathway),
write the utterance's audio and, per map, the speech it keeps and the speech it removes
(``voxray.mask.audio``) as FLAC. It runs on the driver after the maps are committed: a few
STFTs per utterance, so no actor pool.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.compute as pc
import soundfile as sf

from voxray import schema
from voxray.corpus.audio import AudioError, load_audio
from voxray.features.base import FrontEndSpec, SpectralView
from voxray.log import get_logger
from voxray.mask.audio import split_speech
from voxray.pipeline.context import RunContext
from voxray.report.load import shown_maps

log = get_logger(__name__)
#: utterances whose maps are read at once (``all`` may name every explained utterance).
CHUNK = 16


def encode_flac(wave: np.ndarray, sample_rate: int) -> bytes:
    """``(n,)`` float samples as 16-bit mono FLAC (clipped to [-1, 1])."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def wanted_maps(ctx: RunContext, model: str) -> dict[str, dict[str, list[str]]]:
    """utt_id -> {method: [pathways]} whose audio ``attribution.audio`` asks for."""
    mode = ctx.cfg.attribution.audio
    if mode == "none" or not ctx.out.parquet_files(schema.ATTRIBUTIONS_PATH):
        return {}
    keys = ctx.out.read_pandas(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames"],
        filter=pc.field("model") == model,
    )
    keys = keys[(keys["num_frames"] > 0) & (keys["pathway"] != "trial")]
    keys["method"] = keys["method"].astype(str)
    if mode == "report":
        shown = shown_maps(keys, ctx.cfg.report.heatmap_utterances)
        return {u: {m: [p] for m, p in by_method.items()} for u, by_method in shown.items()}
    out: dict[str, dict[str, list[str]]] = {}
    for u, m, p in keys[["utt_id", "method", "pathway"]].itertuples(index=False):
        out.setdefault(u, {}).setdefault(m, []).append(p)
    return out


def write_explanation_audio(ctx: RunContext, model: str, front_end: FrontEndSpec) -> int:
    """Write the audio of the maps ``wanted_maps`` names that audio/ lacks; the number of
    files written. Skipped, with the reason logged, where the front-end's bins are not bands
    of a spectrum or its frames are not on a regular grid (``spectral_view`` is None)."""
    wanted = wanted_maps(ctx, model)
    if not wanted or not ctx.cfg.data_root:
        return 0
    rate = ctx.cfg.corpus.sample_rate
    view = front_end.build("cpu", rate).spectral_view(rate)
    if view is None:
        log.info(
            "attribute: no audio of the explanations: front-end %r has no STFT view (cepstra, "
            "deltas, an energy column or VAD-dropped frames)",
            front_end.name,
        )
        return 0
    manifest = ctx.out.read_pandas(schema.MANIFEST_PATH, columns=["utt_id", "path"])
    path_of = dict(zip(manifest["utt_id"], manifest["path"], strict=True))
    utts = list(wanted)
    written = sum(
        _write_chunk(ctx, model, view, {u: wanted[u] for u in utts[i : i + CHUNK]}, path_of)
        for i in range(0, len(utts), CHUNK)
    )
    log.info("attribute: %d audio files of %d utterances' explanations", written, len(wanted))
    return written


def _write_chunk(
    ctx: RunContext,
    model: str,
    view: SpectralView,
    wanted: dict[str, dict[str, list[str]]],
    path_of: dict[str, str],
) -> int:
    """``write_explanation_audio`` for the utterances of ``wanted`` (their maps read at once)."""
    out, rate = ctx.out, ctx.cfg.corpus.sample_rate
    maps = out.read_table(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames", "num_bins", "values"],
        filter=(pc.field("model") == model)
        & schema.is_in(schema.ATTRIBUTIONS, "utt_id", list(wanted)),
    )
    written = 0
    waves: dict[str, np.ndarray] = {}
    for u, m, p, a in zip(
        maps.column("utt_id").to_pylist(),
        [str(m) for m in maps.column("method").to_pylist()],
        maps.column("pathway").to_pylist(),
        schema.matrices(maps),
        strict=True,
    ):
        files = {part: schema.audio_file(model, u, m, p, part) for part in schema.AUDIO_PARTS}
        if p not in wanted[u].get(m, ()) or all(out.exists(f) for f in files.values()):
            continue
        if u not in waves:
            try:
                waves[u] = load_audio(ctx.data, path_of[u], ctx.cfg.corpus)
            except (AudioError, KeyError) as exc:
                log.warning("attribute: no audio of %s's explanations: %s", u, exc)
                waves[u] = np.zeros(0, np.float32)
            if waves[u].size:
                out.write_bytes(schema.audio_file(model, u), encode_flac(waves[u], rate))
                written += 1
        if not waves[u].size or a.shape[1] != view.weights.shape[0]:
            continue
        split = split_speech(waves[u], a, view)
        out.write_bytes(files["kept"], encode_flac(split.kept, rate))
        out.write_bytes(files["removed"], encode_flac(split.removed, rate))
        written += 2
    return written
