"""The two reads and one write behind a stage's fingerprint: the digest of the input rows the
stage reads, and the removal of the outputs of a stage whose recipe went stale (so that its
resume logic, which skips committed rows, recomputes them all)."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from voxray.config import ConfigError
from voxray.io.prune import drop_rows
from voxray.io.quarantine import clear_quarantine
from voxray.io.storage import StorageError
from voxray.log import get_logger
from voxray.pipeline.context import (
    ATTRIBUTIONS,
    EMBEDDINGS,
    FEATURES,
    MANIFEST,
    MASKED,
    METRICS,
    MODELS,
    PAPER_SWEEPS,
    TRIALS,
    TUNE,
    RunContext,
)
from voxray.pipeline.fingerprint import digest
from voxray.pipeline.model_ref import base_model

log = get_logger(__name__)

#: the manifest columns that say which audio a row is
_ROW = ["utt_id", "path", "num_samples", "split"]


def _table_digest(table: pa.Table) -> str:
    """A digest of a table's rows, independent of their order and of Parquet's file bytes."""
    if not table.column_names:
        return digest([])
    rows = table.sort_by([(c, "ascending") for c in table.column_names])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as w:
        w.write_table(rows)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


def corpus_digest(ctx: RunContext, stage: str) -> str | None:
    """The input rows ``stage`` reads: for manifest, the corpus files (path, size); for train,
    the training split's manifest rows (an utterance added to the test speakers leaves the
    model as it is); for the others, the whole manifest and the trial lists. None where they
    cannot be read (no --data-root, no manifest yet)."""
    try:
        if stage == "manifest":
            return digest(ctx.data.sizes())
        manifest = ctx.out.read_table(MANIFEST, columns=_ROW)
        if stage == "train":
            return _table_digest(manifest.filter(pc.field("split") == "train"))
        trials = ctx.out.read_table(TRIALS) if ctx.out.exists(TRIALS) else pa.table({})
        return digest([_table_digest(manifest), _table_digest(trials)])
    except (ConfigError, StorageError, FileNotFoundError):
        return None


def discard_outputs(ctx: RunContext, stage: str, info: dict[str, Any]) -> None:
    """Remove what ``stage`` wrote (``info``: its old marker), and its quarantine rows, before
    it is rebuilt. The manifest, evaluate and report stages rewrite theirs whole; a trained
    model is named by its old marker."""
    out = ctx.out
    whole = {"features": FEATURES, "mask": MASKED, "tune": TUNE}
    if stage in whole:
        out.remove(whole[stage], recursive=True)
    if stage == "tune":  # the sweeps' metrics/ parts: a sweep switched off leaves none behind
        for name in PAPER_SWEEPS:
            out.remove(f"{METRICS}/tune-{name}.parquet")
    elif stage == "embed":  # the rows of the model it embeds with now: another model's rows
        # (the one the old marker names, when --model changed) were made by that model and stay
        # its own; retrain's are rebuilt with retrain (it follows embed)
        mine = (pc.field("condition") == "none") & (pc.field("model") == base_model(ctx).name)
        drop_rows(out, EMBEDDINGS, mine)
    elif stage in ("attribute", "trial"):  # they share attributions/, by pathway
        is_trial = pc.field("pathway") == "trial"
        drop_rows(out, ATTRIBUTIONS, is_trial if stage == "trial" else ~is_trial)
    elif stage == "train" and info.get("model"):
        out.remove(f"{MODELS}/{info['model']}", recursive=True)
    elif stage == "retrain":
        models = list(info.get("models", []))
        for name in models:
            out.remove(f"{MODELS}/{name}", recursive=True)
        by_retrained = pc.field("model").isin(models) if models else pc.scalar(False)
        drop_rows(out, EMBEDDINGS, (pc.field("condition") != "none") | by_retrained)
    clear_quarantine(out, stage)
    log.info("stage %s: stale outputs removed", stage)
