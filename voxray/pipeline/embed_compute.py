"""Embeddings of feature matrices on an actor: what both embed paths share.

The embed stage (features/ from Parquet, ``voxray.pipeline.embed_stage``) and embedding
from audio (the model's front-end in the actor, ``voxray.pipeline.embed_from_audio``) embed
through ``ComputeEmbeddings.embed_rows``, so both write the same embeddings/ rows. Full
utterances of different lengths are never padded together (attentive pooling would see the
padding): only equal-length utterances share a forward pass. Segments all have the same
length, so they batch freely.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import torch

from voxray import schema
from voxray.config import EmbedConfig
from voxray.faults import maybe_fail
from voxray.io.sink import committed_keys
from voxray.io.storage import Storage
from voxray.pipeline.context import EMBEDDINGS
from voxray.pipeline.datasets import equal_length_groups
from voxray.pipeline.failures import Failure, compute_split
from voxray.pipeline.length_buckets import bucket_length
from voxray.pipeline.model_actor import ModelActor
from voxray.pipeline.model_ref import ModelRef
from voxray.pipeline.precision import precision
from voxray.pipeline.time_split import PartClock
from voxray.train.data import loop_crop, segment_frames, segment_starts

STAGE = "embed"
EMBED_KEYS = ("utt_id", "segment", "model", "condition")
#: Frames one CPU forward holds at most. Measured with ECAPA C=1024 on two one-thread
#: processes (bench/README.md, 2026-12-02): 4 x 150 frames ran 14% faster per utterance than
#: 1 x 150, but 8 x 300 ran 12% slower than 1 x 300 and 8 x 600 23% slower than 1 x 600 (the
#: activations of a large batch no longer fit the caches).
CPU_FORWARD_FRAMES = 600
#: Equal-length inputs one forward holds at most: on a CPU (within CPU_FORWARD_FRAMES), on a GPU.
CPU_GROUP, GPU_GROUP = 8, 128


class ComputeEmbeddings(ModelActor):
    """map_batches callable: embeds each batch of features with the model's embedder."""

    def __init__(
        self,
        model: ModelRef,
        condition: str,
        cfg: EmbedConfig,
        frame_shift_ms: float,
        num_gpus: float,
        s3: object,
    ) -> None:
        super().__init__(model, num_gpus, s3)
        self.embedder = self.model.embedder
        self.condition = condition
        self.cfg = cfg
        self.seg_frames = segment_frames(cfg.segment_s, frame_shift_ms)
        self.min_frames = int(self.embedder.min_frames)
        # GPUs want large batches; on a CPU only short inputs gain (see CPU_FORWARD_FRAMES)
        self.group = GPU_GROUP if self.device == "cuda" else CPU_GROUP
        self.max_frames = 0 if self.device == "cuda" else CPU_FORWARD_FRAMES
        self.clock = PartClock()  # the stage's time split (pipeline/time_split.py)

    @torch.inference_mode()
    def _embed(self, mats: list[np.ndarray]) -> list[np.ndarray]:
        """Embeddings of ``mats`` (each ``(T, F)``), equal lengths batched; a batch that runs
        out of memory is halved and retried (pipeline/failures.py), and an input that fails
        even alone stops the stage with its error (embeddings have no quarantine)."""

        def run(group: list[int]) -> np.ndarray:
            x = torch.from_numpy(np.stack([self._fit(mats[i]) for i in group])).to(self.device)
            with self.clock.part("forward"), precision(self.cfg.precision, self.device):
                return self.embedder(x).float().cpu().numpy()

        out: list[np.ndarray] = [np.zeros(0)] * len(mats)
        for group in self.groups([m.shape[0] for m in mats]):
            for sub, emb in compute_split(group, run):
                if isinstance(emb, Failure):
                    raise RuntimeError(
                        f"embed: a {mats[sub[0]].shape[0]}-frame input fails alone: {emb.reason}"
                    )
                for i, e in zip(sub, emb, strict=True):
                    out[i] = e
        return out

    def groups(self, lengths: list[int]) -> list[list[int]]:
        """Inputs (by index) that share one forward pass: equal lengths only."""
        return equal_length_groups(lengths, self.group, self.max_frames)

    def _fit(self, m: np.ndarray) -> np.ndarray:
        """Loop utterances shorter than the model's minimum input (as training crops do)."""
        return m if m.shape[0] >= self.min_frames else loop_crop(m, 0, self.min_frames)

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        with self.clock.part("arrow"):
            mats = schema.matrices(batch)
        return self.embed_rows(batch.column("utt_id").to_pylist(), mats)

    def embed_rows(self, utt_ids: list[str], mats: list[np.ndarray]) -> pa.Table:
        """embeddings/ rows of utterances given as feature matrices ``(T_i, F)``: the full
        utterance (cropped to ``cfg.bucket_frames``) and, if asked, its segments."""
        rows: dict[str, list] = {"utt_id": [], "segment": [], "start_frame": [], "num_frames": []}
        pieces: list[np.ndarray] = []
        for u, m in zip(utt_ids, mats, strict=True):
            if self.cfg.full:
                full = m[: bucket_length(m.shape[0], self.cfg.bucket_frames)]
                rows["utt_id"].append(u)
                rows["segment"].append(-1)
                rows["start_frame"].append(0)
                rows["num_frames"].append(full.shape[0])
                pieces.append(full)
            if self.cfg.segments:
                for k, s in enumerate(
                    segment_starts(m.shape[0], self.seg_frames, self.cfg.overlap)
                ):
                    seg = m[s : s + self.seg_frames]
                    rows["utt_id"].append(u)
                    rows["segment"].append(k)
                    rows["start_frame"].append(s)
                    rows["num_frames"].append(seg.shape[0])
                    pieces.append(seg)
        embs = self._embed(pieces)
        n = len(pieces)
        with self.clock.part("arrow"):
            return schema.table(
                schema.EMBEDDINGS,
                {
                    **rows,
                    "model": [self.model_name] * n,
                    "condition": [self.condition] * n,
                    "embedding": schema.floats_column(embs),
                },
            )


def embedded_by(out: Storage) -> dict[tuple[str, str], set[str]]:
    """(model, condition) -> the utterances whose embeddings/ rows are committed: one read of
    the keys serves every model and data set of a stage."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for k in committed_keys(out, EMBEDDINGS, EMBED_KEYS):
        found[(k[2], k[3])].add(k[0])
    return found


def embedded(out: Storage, model: str, condition: str) -> set[str]:
    """The utterances whose embeddings/ rows by ``model`` on ``condition`` are committed."""
    return embedded_by(out).get((model, condition), set())
