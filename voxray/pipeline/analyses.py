"""The attribution analyses of the evaluate stage, each ``fn(ctx) -> info`` writing its own
metrics/ and curves/ parts (deterministic names, so a rerun replaces them):

- identification: Top-1 of the classification model on its speakers' held-out utterances;
- faithfulness: deletion / insertion curves (001) with Top-1 and with the verification score,
  against random and time-aligned masking, after energy VAD; pixel flipping (002);
- multispeaker: 001's A-B, A-B-A, B-A-B, A-B-C localisation and recognition (Table 2);
- sanity: cascading model-parameter and label randomisation (Adebayo et al. 2018);
- gender: 002's AlexNet gender classifier, LRP pixel flipping, Moore augmentation, retraining.

They work on fixed-length centre crops (``train.segment_s``) so that every batch has one
shape, as 001's 200-frame inputs do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow.compute as pc
import torch
from torch import Tensor

from voxray import schema
from voxray.attribution import Pathway, attribute, get_attributor, method_pathways
from voxray.attribution.cam_layers import to_input_grid
from voxray.attribution.hooks import inference_state
from voxray.config import VoxrayConfig, replace
from voxray.eval import multispeaker
from voxray.eval.faithfulness import cosine_score, masking_curves, pixel_flipping, top1_score
from voxray.eval.sanity import cascading_randomisation, flag_insensitive, label_randomisation
from voxray.features import feature_energy
from voxray.log import get_logger
from voxray.mask import moore_replace
from voxray.models import build_classifier
from voxray.models.checkpoint import LoadedModel, load_model
from voxray.pipeline.context import METRICS, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.front_ends import base_front_end
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.verification_eval import write_curve
from voxray.train.data import centre_start, loop_crop, segment_frames
from voxray.train.local import accuracy, fit_classifier

log = get_logger(__name__)
#: forward passes per model call in the curves: CPU convolutions are memory-bound on big batches
ROWS_PER_CALL = {"cpu": 8, "cuda": 256}


@dataclass
class Crops:
    """Fixed-length centre crops of some utterances, with their class labels."""

    utt_ids: list[str]
    feats: Tensor
    labels: Tensor


def crops(
    ctx: RunContext,
    kind: str,
    split: str,
    n: int,
    frames: int,
    label_of: Callable[[str], int | None],
) -> Crops:
    """Up to ``n`` utterances of ``split`` taken round-robin over speakers (deterministic)."""
    m = ctx.out.read_table(
        "manifest.parquet", columns=["utt_id", "speaker_id"], filter=pc.field("split") == split
    )
    by_spk: dict[str, list[str]] = {}
    for u, s in sorted(zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist())):
        if label_of(u) is not None:
            by_spk.setdefault(s, []).append(u)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < n and any(depth < len(v) for v in by_spk.values()):
        chosen += [v[depth] for v in by_spk.values() if depth < len(v)][: n - len(chosen)]
        depth += 1
    t = read_features(ctx.out, kind, chosen)
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t)))
    ids = [u for u in chosen if u in mats]
    x = (
        np.stack([loop_crop(mats[u], centre_start(mats[u].shape[0], frames), frames) for u in ids])
        if ids
        else np.zeros((0, frames, 0))
    )
    return Crops(
        ids,
        torch.from_numpy(x.astype(np.float32)),
        torch.tensor([label_of(u) for u in ids], dtype=torch.long),
    )


def _loaded(ctx: RunContext) -> LoadedModel:
    return load_model(base_model(ctx).path, ctx.cfg.corpus.s3)


def _frames(cfg: VoxrayConfig, seconds: float | None = None) -> int:
    return segment_frames(seconds or cfg.train.segment_s, cfg.features.frame_shift_ms)


def _speaker_labels(loaded: LoadedModel) -> Callable[[str], int | None]:
    index = {s: i for i, s in enumerate(loaded.speakers)}
    return lambda u: index.get(u.split("/", 1)[0])


def _write_metrics(
    ctx: RunContext, name: str, rows: list[tuple[str, str, str, str, str, float]]
) -> None:
    cols: dict[str, list] = {k: [] for k in schema.required(schema.METRICS)}
    for row in rows:
        for k, v in zip(schema.required(schema.METRICS), row):
            cols[k].append(v)
    ctx.out.write_table(f"{METRICS}/{name}.parquet", schema.table(schema.METRICS, cols))


def explained_pathway(method: str) -> str:
    """The pathway the analyses explain with: the classification output (the model's decision)."""
    return method_pathways(method, (Pathway.CLASSIFICATION,))[0]


def _maps(
    model: torch.nn.Module, feats: Tensor, method: str, target: Tensor, params: Any
) -> Tensor:
    return attribute(
        model, feats, method, explained_pathway(method), params=params, target=target
    ).maps.detach()


def speech_mask(feats: Tensor, cfg: VoxrayConfig) -> np.ndarray:
    """Energy VAD on the stored features (001 removes non-speech before deletion/insertion).

    Features may be mean-normalised (CMN), which removes absolute levels, so the rule is
    relative: a frame is speech when its log-mel energy is within ``vad_energy_threshold``
    nats (5.5, about 24 dB) of the utterance's loud frames (95th percentile). An item where
    that marks nothing keeps all its frames.
    """
    out = []
    for f in feats:
        e = feature_energy(f).cpu().numpy()
        speech = e > np.percentile(e, 95) - cfg.features.vad_energy_threshold
        out.append(speech if speech.any() else np.ones_like(speech))
    return np.stack(out)


# --------------------------------------------------------------------------- identification


def run_identification(ctx: RunContext) -> dict[str, Any]:
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    m = ctx.out.read_table(
        "manifest.parquet", columns=["utt_id", "iden_split"], filter=pc.field("split") == "train"
    )
    iden_test = [
        u
        for u, s in zip(m.column("utt_id").to_pylist(), m.column("iden_split").to_pylist())
        if s == 3
    ]
    label_of = _speaker_labels(loaded)
    ids = [u for u in (iden_test or m.column("utt_id").to_pylist()) if label_of(u) is not None][
        :1000
    ]
    t = read_features(ctx.out, loaded.front_end.name, ids)
    model = loaded.classifier.eval()
    hits = []
    with torch.inference_mode():
        for u, x in zip(t.column("utt_id").to_pylist(), schema.matrices(t)):
            hits.append(int(model(torch.from_numpy(x)[None]).argmax(1).item() == label_of(u)))
    # utterances the model trained on are marked as such: Top-1 on them is not a held-out figure
    lst = (
        "iden_split3"
        if iden_test and ctx.cfg.train.exclude_iden_test
        else ("iden_split3_seen" if iden_test else "train_seen")
    )
    _write_metrics(
        ctx,
        f"identification-{loaded.name}",
        [
            (
                base_model(ctx).name,
                "none",
                lst,
                "",
                "top1",
                float(np.mean(hits)) if hits else float("nan"),
            ),
            (base_model(ctx).name, "none", lst, "", "utterances", float(len(hits))),
        ],
    )
    return {"top1": float(np.mean(hits)) if hits else None, "utterances": len(hits), "list": lst}


# --------------------------------------------------------------------------- faithfulness


def run_faithfulness(ctx: RunContext) -> dict[str, Any]:
    cfg, fc = ctx.cfg, ctx.cfg.eval.faithfulness
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    name = base_model(ctx).name
    data = crops(
        ctx,
        loaded.front_end.name,
        "train",
        fc.max_utterances,
        _frames(cfg),
        _speaker_labels(loaded),
    )
    model = loaded.classifier.eval()
    with torch.inference_mode():
        refs = model.embedder(data.feats)
    speech = speech_mask(data.feats, cfg)
    rows = ROWS_PER_CALL[data.feats.device.type]
    scorers = {
        "top1": top1_score(model, data.labels),
        "verification": cosine_score(model.embedder, refs),
    }
    methods = fc.methods or cfg.attribution.methods
    metrics: list[tuple] = []
    aucs: dict[str, float] = {}
    for order in ("random", "time_aligned"):
        for scorer, fn in scorers.items():
            with torch.inference_mode():
                curves = masking_curves(
                    data.feats,
                    None,
                    fn,
                    fc.steps,
                    order=order,
                    speech=speech,
                    seed=cfg.seed,
                    max_rows=rows,
                )
            for mode, curve in curves.items():
                write_curve(ctx, mode, name, order, scorer, curve.fractions, curve.scores)
                metrics.append((name, order, "faithfulness", scorer, f"{mode}_auc", curve.auc))
    with torch.inference_mode():
        flips = pixel_flipping(
            data.feats,
            None,
            scorers["top1"],
            fc.flip_fractions,
            order="random",
            seed=cfg.seed,
            max_rows=rows,
        )
    write_curve(ctx, "pixel_flipping", name, "random", "top1", flips.fractions, flips.scores)
    metrics += [
        (name, "random", "pixel_flipping", "top1", f"acc@{q:g}", s)
        for q, s in zip(flips.fractions, flips.scores)
    ]
    for method in methods:
        n = (
            min(len(data.utt_ids), cfg.attribution.perturbation_max_utterances)
            if get_attributor(method).perturbs
            else len(data.utt_ids)
        )
        x, y, sp = data.feats[:n], data.labels[:n], speech[:n]
        maps = _maps(model, x, method, y, cfg.attribution)
        label = f"{method}/{explained_pathway(method)}"
        sub = {"top1": top1_score(model, y), "verification": cosine_score(model.embedder, refs[:n])}
        for scorer, fn in sub.items():
            with torch.inference_mode():
                curves = masking_curves(
                    x, maps, fn, fc.steps, speech=sp, seed=cfg.seed, max_rows=rows
                )
            for mode, curve in curves.items():
                write_curve(ctx, mode, name, label, scorer, curve.fractions, curve.scores)
                metrics.append((name, label, "faithfulness", scorer, f"{mode}_auc", curve.auc))
                aucs[f"{label}:{scorer}:{mode}"] = curve.auc
        with torch.inference_mode():
            flips = pixel_flipping(
                x, maps, sub["top1"], fc.flip_fractions, order="relevance", max_rows=rows
            )
        write_curve(ctx, "pixel_flipping", name, label, "top1", flips.fractions, flips.scores)
        metrics += [
            (name, label, "pixel_flipping", "top1", f"acc@{q:g}", s)
            for q, s in zip(flips.fractions, flips.scores)
        ]
    _write_metrics(ctx, f"faithfulness-{name}", metrics)
    return {"utterances": len(data.utt_ids), "methods": list(methods), "aucs": aucs}


# --------------------------------------------------------------------------- multi-speaker


def layer_specs(layers: list[str]) -> list[str]:
    """Single layers, then cumulative averages from the top (001: S4, S4+S3, S4+S3+S2, ...)."""
    top_down = layers[::-1]
    return layers + ["+".join(top_down[: k + 1]) for k in range(1, len(top_down))]


def run_multispeaker(ctx: RunContext) -> dict[str, Any]:
    cfg, mc = ctx.cfg, ctx.cfg.eval.multispeaker
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    name = base_model(ctx).name
    model = loaded.classifier.eval()
    label_of = _speaker_labels(loaded)
    m = ctx.out.read_table(
        "manifest.parquet", columns=["utt_id", "speaker_id"], filter=pc.field("split") == "train"
    )
    per_speaker: dict[str, list[str]] = {}
    for u, s in sorted(zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist())):
        per_speaker.setdefault(s, [])
        if len(per_speaker[s]) < 4:
            per_speaker[s].append(u)
    t = read_features(ctx.out, loaded.front_end.name, [u for v in per_speaker.values() for u in v])
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t)))
    utterances = {s: [mats[u] for u in v if u in mats] for s, v in per_speaker.items()}
    labels = {s: label_of(v[0]) for s, v in per_speaker.items() if v and label_of(v[0]) is not None}
    layers = [n for n in loaded.classifier.embedder.layers() if n not in ("pool", "fc")]
    methods = [mth for mth in mc.methods if Pathway.CAM in get_attributor(mth).pathways]

    def saliency_fn(
        model_: torch.nn.Module, feats: Tensor, targets: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        out = {}
        frames, bins = feats.shape[1:]
        for mth in methods:
            with inference_state(model_):
                raw = get_attributor(mth)(model_, cfg.attribution).layer_maps(
                    feats.detach(), targets, layers
                )
            out[mth] = {k: to_input_grid(v, frames, bins).detach() for k, v in raw.items()}
        return out

    rows = multispeaker.run_multispeaker(
        model,
        utterances,
        labels,
        mc.cases,
        saliency_fn,
        np.random.default_rng(cfg.seed),
        mc.trials_per_case,
        _frames(cfg, mc.segment_s),
        layer_specs(layers),
    )
    metrics: list[tuple] = []
    for case in mc.cases:
        first = next((r for r in rows if r.case == case), None)
        if first is not None:
            metrics.append(
                (name, "original", f"multispeaker:{case}", "", "top1", first.top1_original)
            )
    for r in rows:
        cond = f"{r.method}@{r.layer_spec}"
        metrics += [
            (name, cond, f"multispeaker:{r.case}", "", "top1", r.top1_masked),
            (name, cond, f"multispeaker:{r.case}", "", "precision", r.precision),
            (name, cond, f"multispeaker:{r.case}", "", "recall", r.recall),
        ]
    _write_metrics(ctx, f"multispeaker-{name}", metrics)
    return {"rows": len(rows), "layers": layers, "methods": methods}


# --------------------------------------------------------------------------- sanity checks


def run_sanity(ctx: RunContext) -> dict[str, Any]:
    cfg, sc = ctx.cfg, ctx.cfg.eval.sanity
    loaded = _loaded(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    name = base_model(ctx).name
    model = loaded.classifier.eval()
    label_of = _speaker_labels(loaded)
    data = crops(ctx, loaded.front_end.name, "train", sc.max_utterances, _frames(cfg), label_of)
    shuffled = None
    if sc.label_randomisation:
        train = crops(ctx, loaded.front_end.name, "train", 100000, _frames(cfg), label_of)
        perm = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(train.labels)))
        shuffled = build_classifier(
            loaded.cfg, loaded.input_dim, loaded.classifier.num_classes, **loaded.options
        )
        fit_classifier(
            shuffled,
            train.feats,
            train.labels[perm],
            sc.label_epochs,
            cfg.train.batch_size,
            cfg.train.lr,
            cfg.seed,
        )
    curves, rows = {}, []
    for method in sc.methods:
        fn = lambda mdl, x, method=method: _maps(mdl, x, method, data.labels, cfg.attribution)  # noqa: E731
        cascade = cascading_randomisation(model, data.feats, fn, seed=cfg.seed)
        curves[method] = cascade
        steps = np.arange(len(cascade.blocks), dtype=np.float64)
        write_curve(
            ctx,
            "sanity_cascading",
            name,
            method,
            "spearman",
            steps,
            np.asarray(cascade.spearman_abs),
        )
        write_curve(ctx, "sanity_cascading", name, method, "ssim", steps, np.asarray(cascade.ssim))
        rows += [
            (name, method, "sanity", "", "spearman_final", cascade.final.spearman_abs),
            (name, method, "sanity", "", "ssim_final", cascade.final.ssim),
        ]
        if shuffled is not None:
            sim = label_randomisation(model, shuffled, data.feats, fn)
            rows.append((name, method, "sanity", "", "label_spearman", sim.spearman_abs))
    flags = flag_insensitive(curves, sc.flag_threshold)
    rows += [(name, m, "sanity", "", "flagged", float(f)) for m, f in flags.items()]
    _write_metrics(ctx, f"sanity-{name}", rows)
    return {
        "flagged": [m for m, f in flags.items() if f],
        "blocks": list(next(iter(curves.values())).blocks) if curves else [],
    }


# --------------------------------------------------------------------------- gender (002)


def run_gender(ctx: RunContext) -> dict[str, Any]:
    cfg, gc = ctx.cfg, ctx.cfg.eval.gender
    m = ctx.out.read_table("manifest.parquet", columns=["utt_id", "gender", "split"])
    gender = {
        u: g
        for u, g in zip(m.column("utt_id").to_pylist(), m.column("gender").to_pylist())
        if g in ("m", "f")
    }
    if len({*gender.values()}) < 2:
        return {"skipped": "the corpus metadata has no two genders"}
    label_of = lambda u: {"m": 0, "f": 1}.get(gender.get(u, ""))  # noqa: E731
    frames = _frames(cfg, gc.segment_s)
    kind = base_front_end(ctx).name
    train = crops(ctx, kind, "train", 100000, frames, label_of)
    test = crops(ctx, kind, "test", 100000, frames, label_of)
    if len(test.utt_ids) < 2 or len(train.utt_ids) < 4:
        return {"skipped": "too few utterances with gender labels"}
    model_cfg = replace(cfg.model, arch="alexnet", head=replace(cfg.model.head, kind="softmax"))
    torch.manual_seed(cfg.seed)
    net = build_classifier(model_cfg, train.feats.shape[2], 2, input_frames=frames)
    fit_classifier(
        net, train.feats, train.labels, gc.epochs, cfg.train.batch_size, 1e-4 * 10, cfg.seed
    )
    fractions = sorted({0.0, gc.top_fraction, *cfg.eval.faithfulness.flip_fractions})
    rows: list[tuple] = []
    info: dict[str, Any] = {}

    def evaluate(model: torch.nn.Module, label: str) -> None:
        maps = _maps(model, test.feats, "lrp_0", test.labels, cfg.attribution)
        score = top1_score(model, test.labels)
        with torch.inference_mode():
            lrp = pixel_flipping(test.feats, maps, score, fractions, order="relevance")
            rnd = pixel_flipping(test.feats, None, score, fractions, order="random", seed=cfg.seed)
        for cond, curve in (("lrp_0", lrp), ("random", rnd)):
            write_curve(ctx, "pixel_flipping", label, cond, "gender", curve.fractions, curve.scores)
            rows.extend(
                (label, cond, "gender", "", f"acc@{q:g}", s)
                for q, s in zip(curve.fractions, curve.scores)
            )
        info[label] = {f"acc@{q:g}": float(s) for q, s in zip(lrp.fractions, lrp.scores)}

    evaluate(net, "alexnet-gender")
    # 002 §4.3: the top 0.5% relevant bins of each training crop replaced by their Moore-neighbourhood
    # mean, then the trained model trained again on the augmented data
    train_maps = _maps(net, train.feats, "lrp_0", train.labels, cfg.attribution).numpy()
    augmented = torch.from_numpy(
        np.stack(
            [moore_replace(x, a, gc.top_fraction) for x, a in zip(train.feats.numpy(), train_maps)]
        ).astype(np.float32)
    )
    fit_classifier(
        net,
        torch.cat([train.feats, augmented]),
        torch.cat([train.labels, train.labels]),
        gc.epochs,
        cfg.train.batch_size,
        1e-4 * 10,
        cfg.seed + 1,
    )
    evaluate(net, "alexnet-gender-augmented")
    info["test_accuracy"] = accuracy(net, test.feats, test.labels)
    _write_metrics(ctx, "gender", rows)
    return info


#: (name, function, enabled(cfg)) in the order the evaluate stage runs them.
ANALYSES: tuple[
    tuple[str, Callable[[RunContext], dict[str, Any]], Callable[[VoxrayConfig], bool]], ...
] = (
    ("identification", run_identification, lambda c: c.eval.identification),
    ("faithfulness", run_faithfulness, lambda c: c.eval.faithfulness.enabled),
    ("multispeaker", run_multispeaker, lambda c: c.eval.multispeaker.enabled),
    ("sanity", run_sanity, lambda c: c.eval.sanity.enabled),
    ("gender", run_gender, lambda c: c.eval.gender.enabled),
)
