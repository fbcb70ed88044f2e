"""Multi-speaker concatenations (Li et al. 2022 §4.3-4.4): boundaries, median-rule localisation on
planted saliency, saliency masking and the Table 2 driver on synthetic speakers whose
identity is one bin of the features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from voxray.eval.multispeaker import (
    build_concatenation,
    draw_trial,
    localise,
    masked_top1,
    mixture_curves,
    precision_recall,
    run_multispeaker,
)

F = 8
TRAINED = 4  # speakers 0..3 are the model's classes; 4 and 5 only interfere


def _seg(value: float, frames: int) -> np.ndarray:
    return np.full((frames, 2), value)


@pytest.mark.parametrize(
    "case, letters, expected_mask",
    [
        ("A-B", "AAABB", [1, 1, 1, 0, 0]),
        ("A-B-A", "AAABBaaa", [1, 1, 1, 0, 0, 1, 1, 1]),
        ("B-A-B", "BBAAABB", [0, 0, 1, 1, 1, 0, 0]),
        ("A-B-C", "AAABBC", [1, 1, 1, 0, 0, 0]),
    ],
    ids=["A-B", "A-B-A", "B-A-B", "A-B-C"],
)
def test_build_concatenation_boundaries(case: str, letters: str, expected_mask: list[int]) -> None:
    values = {"A": 1.0, "a": 4.0, "B": 2.0, "C": 3.0}
    segments = {"A": [_seg(1.0, 3), _seg(4.0, 3)], "B": _seg(2.0, 2), "C": _seg(3.0, 1)}
    feats, mask = build_concatenation(case, segments)
    np.testing.assert_array_equal(feats[:, 0], [values[c] for c in letters])
    np.testing.assert_array_equal(mask, np.array(expected_mask, dtype=bool))


@pytest.mark.parametrize(
    "case, segments, message",
    [
        ("A-C", {"A": _seg(1, 2)}, "not one of"),
        ("A-B-C", {"A": _seg(1, 2), "B": _seg(2, 2)}, "no segment for C"),
        ("A-B-A", {"A": [_seg(1, 2)], "B": _seg(2, 2)}, "occurs 2 times"),
        ("A-B", {"A": _seg(1, 2), "B": np.zeros((2, 3))}, "different numbers of bins"),
    ],
    ids=["case", "missing", "too-few", "bins"],
)
def test_build_concatenation_errors(case: str, segments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_concatenation(case, segments)


@pytest.mark.parametrize(
    "case, expected",
    [("A-B", (1.0, 1.0)), ("A-B-A", (1.0, 0.75)), ("B-A-B", (10 / 15, 1.0))],
    ids=["A-B", "A-B-A", "B-A-B"],
)
def test_localise_planted_saliency(
    case: str, expected: tuple[float, float], rng: np.random.Generator
) -> None:
    """A frames get saliency in [0.5, 1], B frames in [0, 0.2]; 10 frames per segment.
    Above the median: A-B: the 10 A frames; A-B-A: 15 of 20 A frames; B-A-B: 10 A + 5 B."""
    segs = {"A": [np.zeros((10, 3)), np.zeros((10, 3))], "B": np.zeros((10, 3))}
    _, mask = build_concatenation(case, segs)
    high = rng.uniform(0.5, 1.0, (len(mask), 3))
    low = rng.uniform(0.0, 0.2, (len(mask), 3))
    predicted = localise(np.where(mask[:, None], high, low))
    assert predicted.sum() == len(mask) // 2
    assert precision_recall(predicted, mask) == pytest.approx(expected)


def test_precision_recall_undefined_is_zero() -> None:
    assert precision_recall([False, False], [True, False]) == (0.0, 0.0)
    assert localise(np.ones((6, 2))).sum() == 0  # a flat map localises nothing


class BinSpeaker(nn.Module):
    """Logits over speakers 0..3: the mean over frames of bins 0..3 (speaker k lives in bin k)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.eye(F)[:, :TRAINED])

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1) @ self.w


def _utterances(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    out = {}
    for k in range(6):
        utts = []
        for _ in range(3):
            u = 0.02 * rng.random((int(rng.integers(12, 30)), F))
            u[:, k] += 1.0
            utts.append(u)
        out[f"spk{k}"] = utts
    return out


def test_masked_top1_recovers_the_target(rng: np.random.Generator) -> None:
    utts = _utterances(rng)
    segments = {"A": utts["spk0"][0][:10], "B": utts["spk1"][0][:10]}
    feats, mask = build_concatenation("B-A-B", segments)
    x = torch.from_numpy(feats).float()[None]
    sal = torch.from_numpy(np.repeat(mask[:, None], F, axis=1)).float()[None]
    model = BinSpeaker()
    target = torch.tensor([0])
    assert not model(x).argmax(1).item() == 0  # B dominates the whole utterance
    assert masked_top1(model, x, sal, target).tolist() == [True]
    assert masked_top1(model, x, 1 - sal, target).tolist() == [False]


def test_draw_trial_speakers(rng: np.random.Generator) -> None:
    utts = {f"spk{k}": [np.full((5, 1), float(k))] for k in range(6)}
    labels = {f"spk{k}": k for k in range(TRAINED)}
    for case in ("A-B-A", "A-B-C", "B-A-B"):
        for _ in range(20):
            feats, mask, label = draw_trial(case, utts, labels, rng, segment_frames=4)
            assert feats.shape == (4 * len(case.split("-")), 1)
            spk = feats[::4, 0].astype(int).tolist()
            letters = case.split("-")
            by_letter = {}
            for letter, s in zip(letters, spk, strict=True):
                assert by_letter.setdefault(letter, s) == s
            assert by_letter["A"] == label < TRAINED
            assert len(set(by_letter.values())) == len(by_letter)  # distinct speakers
            np.testing.assert_array_equal(mask, np.repeat([c == "A" for c in letters], 4))


def _saliency_fn(model: nn.Module, feats: Tensor, targets: Tensor) -> dict[str, dict[str, Tensor]]:
    """'oracle': each frame's energy in the target's bin; 'flat': constant maps."""
    energy = feats[torch.arange(len(feats)), :, targets]  # (B, T)
    oracle = energy[:, :, None].expand_as(feats)
    return {
        "oracle": {"S1": oracle, "S2": torch.zeros_like(feats) + 0.3 * oracle},
        "flat": {"": torch.ones_like(feats)},
    }


def test_run_multispeaker_table(rng: np.random.Generator) -> None:
    utts = _utterances(rng)
    labels = {f"spk{k}": k for k in range(TRAINED)}
    calls = []

    def saliency(model: nn.Module, feats: Tensor, targets: Tensor):
        calls.append(len(feats))
        return _saliency_fn(model, feats, targets)

    rows = run_multispeaker(
        BinSpeaker(),
        utts,
        labels,
        ("B-A-B", "A-B"),
        saliency,
        rng,
        trials_per_case=12,
        segment_frames=10,
        batch_size=5,
    )
    assert calls == [5, 5, 2, 5, 5, 2]
    keyed = {(r.case, r.method, r.layer_spec): r for r in rows}
    specs = (("oracle", "S1"), ("oracle", "S2"), ("flat", ""))
    assert set(keyed) == {(c, m, s) for c in ("B-A-B", "A-B") for m, s in specs}
    for case in ("B-A-B", "A-B"):
        oracle = keyed[(case, "oracle", "S1")]
        assert oracle.top1_masked == 1.0 and oracle.top1_masked > oracle.top1_original
        assert oracle.recall == 1.0
        # the per-trial values the intervals resample, by the target speaker of each trial
        assert oracle.per_trial["top1_masked"].mean() == oracle.top1_masked
        assert oracle.per_trial["top1_original"].mean() == oracle.top1_original
        assert len(oracle.speakers) == 12 and set(oracle.speakers.tolist()) <= set(range(TRAINED))
        flat = keyed[(case, "flat", "")]
        assert flat.precision == 0.0 and flat.recall == 0.0  # a constant map normalises to zeros
    assert keyed[("A-B", "oracle", "S1")].precision == 1.0
    assert keyed[("B-A-B", "oracle", "S1")].precision == pytest.approx(10 / 15)

    # S2 is S1 scaled: identical after normalisation; the S1+S2 average is the same map again
    def table(spec: str) -> list[tuple]:
        rows = run_multispeaker(
            BinSpeaker(),
            utts,
            labels,
            ("A-B",),
            _saliency_fn,
            np.random.default_rng(0),
            trials_per_case=4,
            segment_frames=10,
            layer_specs=(spec,),
        )
        return [(r.method, r.top1_masked, r.precision, r.recall) for r in rows]

    assert table("S1+S2") == table("S1")


def test_run_multispeaker_errors(rng: np.random.Generator) -> None:
    utts = _utterances(rng)
    with pytest.raises(ValueError, match="no maps for \\['S9'\\]"):
        run_multispeaker(
            BinSpeaker(), utts, {"spk0": 0}, ("A-B",), _saliency_fn, rng, 2, 10, layer_specs=("S9",)
        )
    two = {"spk0": utts["spk0"], "spk1": utts["spk1"]}
    with pytest.raises(ValueError, match="interfering speakers"):
        run_multispeaker(BinSpeaker(), two, {"spk0": 0}, ("A-B-C",), _saliency_fn, rng, 2, 10)


def test_mixture_curves_target_first_map_beats_random(rng: np.random.Generator) -> None:
    """Li et al. 2022 Fig. 4: a map that ranks A's frames first deletes A's evidence first
    (Top-1 of A falls faster than at random, on A-B-A where A wins unmasked) and reveals it
    first (Top-1 of A rises faster, on B-A-B where B wins unmasked)."""
    utts = _utterances(rng)
    labels = {f"spk{k}": k for k in range(TRAINED)}

    def curves(case: str) -> dict[str, object]:
        out = mixture_curves(
            BinSpeaker(), utts, labels, _saliency_fn, rng, 16, 10, "S1+S2", 10, case, batch_size=5
        )
        return {c.method: c for c in out}

    aba = curves("A-B-A")
    assert set(aba) == {"random", "oracle", "flat"}
    assert aba["oracle"].layer_spec == "S1+S2" and aba["flat"].layer_spec == ""
    oracle, rand = aba["oracle"].curves["deletion"], aba["random"].curves["deletion"]
    assert oracle.per_item.shape == (16, 11) and oracle.scores[0] == rand.scores[0] == 1.0
    assert oracle.auc < rand.auc - 0.2
    assert oracle.scores[5] < rand.scores[5]
    # each mixture's unit is its target speaker A, one of the model's classes
    assert set(aba["oracle"].speakers.tolist()) <= set(range(TRAINED))
    bab = curves("B-A-B")
    oracle, rand = bab["oracle"].curves["insertion"], bab["random"].curves["insertion"]
    assert oracle.auc > rand.auc + 0.2
