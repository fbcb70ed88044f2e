"""A small voxray output folder made without audio: random features, a manifest, trial lists
and an untrained model. Tests of the later stages (tune, mask, evaluate) start from it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from voxray import schema
from voxray.config import ModelConfig
from voxray.io.run_state import mark_stage_done
from voxray.io.sink import write_partitioned
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import default_front_end, save_model
from voxray.pipeline.front_ends import record_front_end


def make_outputs(
    out: str,
    speakers: int = 6,
    utts: int = 4,
    frames: int = 120,
    bins: int = 80,
    channels: int = 16,
    name: str = "ecapa",
    seed: int = 0,
    first_speaker: int = 10001,
    model: bool = True,
) -> Storage:
    """Write manifest.parquet, trials.parquet, features/kind=fbank and (``model``) an untrained
    models/<name>/ under out.

    Each speaker's features are noise around a speaker-specific mean, so a model can tell them
    apart; the first half of the speakers train, the others are in the trial list. Speaker ids
    count from ``id<first_speaker>``, so two folders can hold disjoint speakers.
    """
    rng = np.random.default_rng(seed)
    s = Storage(out)
    spk = [f"id{first_speaker + i}" for i in range(speakers)]
    train = spk[: speakers // 2]
    rows, mats = _utterances(rng, spk, train, utts, frames, bins)
    s.write_table(schema.MANIFEST_PATH, schema.table(schema.MANIFEST, rows))
    feats = pa.table(
        {
            "utt_id": rows["utt_id"],
            "kind": ["fbank"] * len(mats),
            "num_frames": pa.array([m.shape[0] for m in mats], pa.int32()),
            "num_bins": pa.array([bins] * len(mats), pa.int32()),
            "values": schema.floats_column(mats),
        }
    )
    write_partitioned(s, "features", feats, schema.FEATURES, ("utt_id", "kind"), partition="kind")
    cfg = ModelConfig(channels=channels, embedding_dim=32)
    record_front_end(s, default_front_end(cfg, bins))  # what the features stage would note
    test_utts = [
        u for u, sp in zip(rows["utt_id"], rows["speaker_id"], strict=True) if sp not in train
    ]
    trials: dict[str, list] = {"list": [], "label": [], "utt_a": [], "utt_b": []}
    for i, a in enumerate(test_utts):
        for b in test_utts[i + 1 :]:
            trials["list"].append("veri_test2.txt")
            trials["label"].append(int(a.split("/")[0] == b.split("/")[0]))
            trials["utt_a"].append(a)
            trials["utt_b"].append(b)
    s.write_table(schema.TRIALS_PATH, schema.table(schema.TRIALS, trials))
    # the stage markers the manifest and features stages (and train, for the model) would leave,
    # so a single stage run on these outputs does not run them again (voxray.pipeline.stages)
    mark_stage_done(s, "manifest", {})
    mark_stage_done(s, "features", {"kinds": ["fbank"]})
    if model:
        save_model(s, f"models/{name}", build_classifier(cfg, bins, len(train)), cfg, train, bins)
        mark_stage_done(s, "train", {"models": [name]})
    return s


def _utterances(
    rng: np.random.Generator, spk: list[str], train: list[str], utts: int, frames: int, bins: int
) -> tuple[dict[str, list], list[np.ndarray]]:
    """Manifest columns and feature matrices: ``utts`` utterances a speaker, two videos each,
    every speaker's frames noise around its own mean."""
    rows: dict[str, list] = {k: [] for k in schema.MANIFEST.names}
    mats = []
    for k, sp in enumerate(spk):
        centre = rng.standard_normal(bins).astype(np.float32)
        for u in range(utts):
            utt = f"{sp}/vid{u % 2:08d}/{u + 1:05d}"
            n = frames + int(rng.integers(0, 40))
            for key, value in zip(
                schema.MANIFEST.names,
                (
                    utt,
                    sp,
                    f"vid{u % 2:08d}",
                    f"wav/{utt}.wav",
                    n * 160,
                    16000,
                    n * 0.01,
                    "train" if sp in train else "test",
                    "m" if k % 2 else "f",
                    0,
                ),
                strict=True,
            ):
                rows[key].append(value)
            mats.append(centre + 0.5 * rng.standard_normal((n, bins)).astype(np.float32))
    return rows, mats
