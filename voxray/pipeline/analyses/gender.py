"""The gender experiment (Sarvaš 2021): an AlexNet gender classifier, LRP pixel flipping
against random flipping, Moore augmentation of the most relevant bins, and retraining."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from voxray.config import ModelConfig, VoxrayConfig, replace
from voxray.eval.faithfulness import pixel_flipping, top1_score
from voxray.mask import moore_replace
from voxray.models import build_classifier
from voxray.models.alexnet import min_input_size
from voxray.pipeline.analyses.crops import Crops, crop_frames, crops, speakers_of
from voxray.pipeline.analyses.explain import explain, mean_row, write_metrics
from voxray.pipeline.context import MANIFEST, RunContext
from voxray.pipeline.front_ends import base_front_end
from voxray.pipeline.verification_eval import write_curve
from voxray.schema import MetricRow
from voxray.train.local import accuracy, fit_classifier

#: the labels of the gender classifier's two classes.
GENDER_CLASS = {"m": 0, "f": 1}


def _gender_of(ctx: RunContext) -> dict[str, str]:
    """utt_id -> "m" / "f" for the utterances whose metadata gives one."""
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "gender", "split"])
    return {
        u: g
        for u, g in zip(m.column("utt_id").to_pylist(), m.column("gender").to_pylist(), strict=True)
        if g in ("m", "f")
    }


def _alexnet(cfg: VoxrayConfig, input_dim: int, frames: int) -> torch.nn.Module:
    """Its own AlexNet: of the speaker model's settings only the embedding size and head
    carry over."""
    model_cfg = ModelConfig(
        arch="alexnet",
        embedding_dim=cfg.model.embedding_dim,
        feature_kind=cfg.model.feature_kind,
        head=replace(cfg.model.head, kind="softmax"),
    )
    torch.manual_seed(cfg.seed)
    return build_classifier(model_cfg, input_dim, 2, input_frames=frames)


def _moore_augmented(net: torch.nn.Module, train: Crops, cfg: VoxrayConfig) -> torch.Tensor:
    """Sarvaš 2021 §4.3: the top ``top_fraction`` relevant bins of each training crop replaced
    by their Moore-neighbourhood mean."""
    train_maps = explain(net, train.feats, "lrp_0", train.labels, cfg.attribution).numpy()
    return torch.from_numpy(
        np.stack(
            [
                moore_replace(x, a, cfg.eval.gender.top_fraction)
                for x, a in zip(train.feats.numpy(), train_maps, strict=True)
            ]
        ).astype(np.float32)
    )


def _flipping(
    ctx: RunContext, test: Crops, rows: list[MetricRow], info: dict[str, Any]
) -> Callable[[torch.nn.Module, str], None]:
    """A function that measures a model's LRP and random pixel flipping on ``test`` as
    ``label``, adding to ``rows`` (each accuracy with its interval over the test speakers)
    and ``info``."""
    cfg, gc = ctx.cfg, ctx.cfg.eval.gender
    fractions = sorted({0.0, gc.top_fraction, *cfg.eval.faithfulness.flip_fractions})
    speakers = speakers_of(ctx, test.utt_ids)

    def evaluate(model: torch.nn.Module, label: str) -> None:
        maps = explain(model, test.feats, "lrp_0", test.labels, cfg.attribution)
        score = top1_score(model, test.labels)
        with torch.inference_mode():
            lrp = pixel_flipping(test.feats, maps, score, fractions, order="relevance")
            rnd = pixel_flipping(test.feats, None, score, fractions, order="random", seed=cfg.seed)
        for cond, curve in (("lrp_0", lrp), ("random", rnd)):
            write_curve(ctx, "pixel_flipping", label, cond, "gender", curve.fractions, curve.scores)
            rows.extend(
                mean_row(ctx, MetricRow(label, cond, "gender", "", f"acc@{q:g}", s), hits, speakers)
                for q, s, hits in zip(curve.fractions, curve.scores, curve.per_item.T, strict=True)
            )
        info[label] = {
            f"acc@{q:g}": float(s) for q, s in zip(lrp.fractions, lrp.scores, strict=True)
        }

    return evaluate


def run_gender(ctx: RunContext) -> dict[str, Any]:
    cfg, gc = ctx.cfg, ctx.cfg.eval.gender
    gender = _gender_of(ctx)
    if len({*gender.values()}) < 2:
        return {"skipped": "the corpus metadata has no two genders"}
    label_of = {u: GENDER_CLASS[g] for u, g in gender.items()}.get
    frames = crop_frames(cfg, gc.segment_s)
    kind = base_front_end(ctx).name
    train = crops(ctx, kind, "train", 100000, frames, label_of)
    test = crops(ctx, kind, "test", 100000, frames, label_of)
    if len(test.utt_ids) < 2 or len(train.utt_ids) < 4:
        return {"skipped": "too few utterances with gender labels"}
    least, bins = min_input_size(), train.feats.shape[2]
    if min(bins, frames) < least:  # a default analysis on a front-end AlexNet cannot read
        return {
            "skipped": f"AlexNet (Becker et al. 2018) needs at least {least} feature bins and "
            f"frames; the model's front-end {kind} has {bins} bins, the crops {frames} frames"
        }
    net = _alexnet(cfg, train.feats.shape[2], frames)
    fit_classifier(net, train.feats, train.labels, gc.epochs, cfg.train.batch_size, gc.lr, cfg.seed)
    rows: list[MetricRow] = []
    info: dict[str, Any] = {}
    evaluate = _flipping(ctx, test, rows, info)
    evaluate(net, "alexnet-gender")
    # then the trained model trained again on the augmented data
    augmented = _moore_augmented(net, train, cfg)
    both = gc.retrain_on == "original+augmented"
    fit_classifier(
        net,
        torch.cat([train.feats, augmented]) if both else augmented,
        torch.cat([train.labels, train.labels]) if both else train.labels,
        gc.epochs,
        cfg.train.batch_size,
        gc.lr,
        cfg.seed + 1,
    )
    evaluate(net, "alexnet-gender-augmented")
    info["test_accuracy"] = accuracy(net, test.feats, test.labels)
    write_metrics(ctx, "gender", rows)
    return info
