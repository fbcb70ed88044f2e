"""Ray Tune sweeps over how attributions mask the input: threshold tau, method and pathway,
LRP epsilon/gamma and the CAM layer combination.

Each trial explains a fixed subset of test utterances with one configuration, masks them
(threshold rule of Zhang et al. 2023) and reports an objective. The test speakers are not the
model's training speakers, so their maps are Traversal maps (``voxray.mask.pathway``); a method that
explains a training class only (CAMs, LRP) cannot be swept on them.

A lower tau keeps more bins, and a mask that keeps everything changes nothing: the frozen EER
alone is won by masking least. The default objectives therefore score each configuration
against its RANDOM REFERENCE, the same maps with their values permuted over the bins of each
utterance (the same values, the same kept fraction, random places):

- ``eer_gap`` (default): frozen-model EER on the own masks minus that on the random ones
  (lower is better: negative when the maps keep the speaker better than chance placement);
- ``deletion_gap``: verification-score deletion AUC (Li et al. 2022) minus that of random deletion
  (a whole curve, which tau does not enter: the config refuses it with more than one tau);
- ``frozen_eer``, ``deletion_auc``: the uncorrected values;
- ``retrain_eer``: EER after retraining a fresh model on the masked training subset, reported
  every epoch so that ASHA stops poor configurations early.

Every trial also reports ``kept_fraction`` (the mean share of bins its mask keeps) and the EERs
of both masks, so the sweep can be read as EER against kept fraction per method.

The best configuration is written as a YAML overlay that ``voxray retrain --config`` accepts.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from voxray.attribution import PATHWAYS, Pathway, attribute, get_attributor, method_pathways
from voxray.config import (
    AttributionConfig,
    MaskCondition,
    MaskConfig,
    TrainConfig,
    TuneConfig,
    replace,
)
from voxray.eval.faithfulness import cosine_score, deletion_curve
from voxray.eval.scoring import score_trials
from voxray.eval.verification import compute_eer
from voxray.faults import maybe_fail
from voxray.mask import apply_condition, kept_fraction
from voxray.mask.pathway import map_pathway
from voxray.models.base import SpeakerClassifier
from voxray.train.data import loop_crop, random_start

#: objective name -> (metric reported to Tune, mode)
OBJECTIVES = {
    "eer_gap": ("eer_gap", "min"),
    "deletion_gap": ("deletion_gap", "min"),
    "frozen_eer": ("eer", "min"),
    "deletion_auc": ("deletion_auc", "min"),
    "retrain_eer": ("eer", "min"),
}
#: what every trial reports beside its objective (tune/results.parquet rows).
REPORTED = ("eer", "eer_random", "kept_fraction", "deletion_auc", "deletion_auc_random")


@dataclass
class TuneData:
    """What every trial needs, shipped once through the object store."""

    model_state: dict[str, torch.Tensor]
    model_factory: Any  # callable () -> SpeakerClassifier (architecture without weights)
    test_feats: dict[str, np.ndarray]
    trials: list[tuple[int, str, str]]
    train_feats: dict[str, np.ndarray]
    train_labels: dict[str, int]
    segment_frames: int


def search_space(cfg: TuneConfig) -> dict[str, Any]:
    from ray import tune

    return {
        "method": tune.choice(list(cfg.methods)),
        "pathway": tune.choice(list(cfg.pathways)),
        "tau": tune.choice(list(cfg.taus)),
        "lrp_epsilon": tune.choice(list(cfg.lrp_epsilons)),
        "lrp_gamma": tune.choice(list(cfg.lrp_gammas)),
        "cam_layers": tune.choice(list(cfg.cam_layer_sets)),
    }


def trial_settings(
    trial: dict[str, Any], base: AttributionConfig
) -> tuple[AttributionConfig, MaskCondition]:
    """The attribution parameters and mask condition a trial's sampled values stand for."""
    attr = replace(
        base,
        lrp_epsilon=float(trial["lrp_epsilon"]),
        lrp_gamma=float(trial["lrp_gamma"]),
        cam_layers=tuple(trial["cam_layers"].split("+")),
    )
    pathway = method_pathways(trial["method"], (trial["pathway"],))[0]
    cond = MaskCondition(
        trial["method"],
        str(pathway if pathway in PATHWAYS else Pathway.CLASSIFICATION),
        "threshold",
        float(trial["tau"]),
    )
    return attr, cond


def best_overlay(trial: dict[str, Any], base: AttributionConfig) -> dict[str, Any]:
    """A config overlay (YAML-ready) reproducing the best trial in ``voxray retrain``."""
    attr, cond = trial_settings(trial, base)
    return {
        "attribution": {
            "lrp_epsilon": attr.lrp_epsilon,
            "lrp_gamma": attr.lrp_gamma,
            "cam_layers": list(attr.cam_layers),
        },
        "mask": {
            "conditions": [
                {
                    "method": cond.method,
                    "pathway": cond.pathway,
                    "rule": cond.rule,
                    "threshold": cond.threshold,
                    "reading": cond.reading,
                }
            ]
        },
    }


def explain(
    model: SpeakerClassifier,
    feats: dict[str, np.ndarray],
    method: str,
    pathway: str,
    params: AttributionConfig,
) -> dict[str, np.ndarray]:
    out = {}
    for utt, x in feats.items():
        res = attribute(model, torch.from_numpy(x)[None], method, pathway, params=params)
        out[utt] = res.maps[0].detach().float().numpy()
    return out


def masked(
    feats: dict[str, np.ndarray], maps: dict[str, np.ndarray], cond: MaskCondition, how: str
) -> dict[str, np.ndarray]:
    return {u: apply_condition(x, maps[u], cond, how).astype(np.float32) for u, x in feats.items()}


def permuted_maps(maps: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The random reference: each map ``(T, F)`` with its values permuted over its bins, so a
    threshold keeps as many bins (the same values) at random places."""
    rng = np.random.default_rng(seed)
    return {u: rng.permutation(a.ravel()).reshape(a.shape) for u, a in sorted(maps.items())}


def eer_against_random(
    model: SpeakerClassifier,
    data: TuneData,
    maps: dict[str, np.ndarray],
    cond: MaskCondition,
    how: str,
    seed: int,
) -> dict[str, float]:
    """Frozen-model EER on the test subset masked by ``maps`` (``eer``), by their permuted
    random reference (``eer_random``) and the difference (``eer_gap``)."""
    eer = trial_eer(data.trials, embed_all(model, masked(data.test_feats, maps, cond, how)))
    reference = permuted_maps(maps, seed)
    rnd = trial_eer(data.trials, embed_all(model, masked(data.test_feats, reference, cond, how)))
    return {"eer": eer, "eer_random": rnd, "eer_gap": eer - rnd}


def check_sweep(cfg: TuneConfig) -> None:
    """Raise naming ``tune.methods`` when a method has no Traversal pathway: the sweep's test
    utterances are of speakers the model was not trained on (see voxray.mask.pathway)."""
    for method in cfg.methods:
        if Pathway.TRAVERSAL not in get_attributor(method).pathways:
            raise ValueError(
                f"tune.methods: {method} explains a training class only, so it cannot mask the "
                "test speakers' utterances the sweep scores; use methods with a Traversal pathway"
            )


@torch.inference_mode()
def embed_all(model: SpeakerClassifier, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        u: model.embedder(torch.from_numpy(x)[None]).float().numpy()[0] for u, x in feats.items()
    }


def trial_eer(trials: list[tuple[int, str, str]], emb: dict[str, np.ndarray]) -> float:
    scores = score_trials(trials, emb)
    return compute_eer(np.asarray(scores), np.array([t[0] for t in trials]))


def deletion_scores(
    model: SpeakerClassifier, data: TuneData, maps: dict[str, np.ndarray], seed: int
) -> dict[str, float]:
    """Mean deletion AUC of the verification score (each utterance against its clean
    embedding) in the order of ``maps`` and in a random order, and their gap."""
    clean = embed_all(model, data.test_feats)
    aucs, random_aucs = [], []
    with torch.inference_mode():
        for u, x in data.test_feats.items():
            score_fn = cosine_score(model.embedder, torch.from_numpy(clean[u])[None])
            xt = torch.from_numpy(x)[None]
            own = deletion_curve(xt, torch.from_numpy(maps[u])[None], score_fn, steps=8)
            rnd = deletion_curve(xt, None, score_fn, steps=8, order="random", seed=seed)
            aucs.append(own.auc)
            random_aucs.append(rnd.auc)
    auc, rnd_auc = float(np.mean(aucs)), float(np.mean(random_aucs))
    return {"deletion_auc": auc, "deletion_auc_random": rnd_auc, "deletion_gap": auc - rnd_auc}


def random_crops(mats: list[np.ndarray], frames: int, rng: np.random.Generator) -> torch.Tensor:
    """A training batch ``(B, frames, F)``: a random crop of each matrix (looped if short)."""
    return torch.from_numpy(
        np.stack([loop_crop(m, random_start(m.shape[0], frames, rng), frames) for m in mats])
    )


def run_trial(
    trial: dict[str, Any],
    data: TuneData,
    tune_cfg: TuneConfig,
    attr_cfg: AttributionConfig,
    mask_cfg: MaskConfig,
    train_cfg: TrainConfig,
) -> None:
    """The Tune trainable: one attribution/mask configuration, reported with ``tune.report``."""
    from ray import tune

    maybe_fail("tune")
    torch.manual_seed(tune_cfg.seed)
    model = data.model_factory()
    model.load_state_dict(data.model_state)
    model.eval()
    params, cond = trial_settings(trial, attr_cfg)
    test_maps = explain(
        model, data.test_feats, trial["method"], map_pathway(cond, seen=False), params
    )
    how = mask_cfg.normalise
    kept = float(np.mean([kept_fraction(a, cond, how) for a in test_maps.values()]))
    if tune_cfg.objective in ("eer_gap", "frozen_eer"):
        scores = eer_against_random(model, data, test_maps, cond, how, tune_cfg.seed)
        tune.report({**scores, "kept_fraction": kept, "epoch": 1})
        return
    if tune_cfg.objective in ("deletion_gap", "deletion_auc"):
        scores = deletion_scores(model, data, test_maps, tune_cfg.seed)
        tune.report({**scores, "kept_fraction": kept, "epoch": 1})
        return
    pathway = map_pathway(cond, seen=True)
    train_maps = explain(model, data.train_feats, trial["method"], pathway, params)
    train_x = masked(data.train_feats, train_maps, cond, mask_cfg.normalise)
    test_x = masked(data.test_feats, test_maps, cond, mask_cfg.normalise)
    fresh = data.model_factory()
    opt = torch.optim.Adam(fresh.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    rng = np.random.default_rng(tune_cfg.seed)
    utts = sorted(train_x)
    for epoch in range(1, tune_cfg.max_epochs + 1):
        fresh.train()
        order = rng.permutation(len(utts))
        for start in range(0, len(order), train_cfg.batch_size):
            idx = order[start : start + train_cfg.batch_size]
            xb = random_crops([train_x[utts[i]] for i in idx], data.segment_frames, rng)
            yb = torch.tensor([data.train_labels[utts[i]] for i in idx])
            loss, _ = fresh.loss(xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        fresh.eval()
        eer = trial_eer(data.trials, embed_all(fresh, test_x))
        tune.report({"eer": eer, "kept_fraction": kept, "epoch": epoch})


def result_rows(results: Any, metric: str) -> list[dict[str, Any]]:
    """Flatten a ResultGrid into tune/ rows (one per trial and metric)."""
    rows = []
    for r in results:
        trial_id = r.path.rstrip("/").split("/")[-1] if r.path else ""
        config = json.dumps({k: r.config[k] for k in sorted(r.config)}, default=str)
        status = "error" if r.error else "done"
        metrics = copy.deepcopy(r.metrics or {})
        for key in dict.fromkeys((metric, *REPORTED, "epoch")):
            if key in metrics and isinstance(metrics[key], (int, float)):
                rows.append(
                    {
                        "trial_id": trial_id,
                        "config": config,
                        "metric": key,
                        "value": float(metrics[key]),
                        "status": status,
                    }
                )
        if r.error:
            rows.append(
                {
                    "trial_id": trial_id,
                    "config": config,
                    "metric": "error",
                    "value": float("nan"),
                    "status": f"error: {r.error}"[:500],
                }
            )
    return rows
