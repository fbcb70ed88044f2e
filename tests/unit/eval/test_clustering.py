"""AHC last-merge scores against hand-computed linkage distances and scipy; dominant sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

from voxray.eval.clustering import (
    EUCLIDEAN_LINKAGES,
    LINKAGES,
    ahc_score,
    dominant_set_embeddings,
    dominant_sets,
    ds_score,
    last_merge_distance,
    mean_cossim,
    mean_dot,
    replicator_dynamics,
    similarity_matrix,
)


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


# Utterance A: three segments at 0, 0.05, 0.15 rad (a1, a2 merge first, then a3 joins);
# utterance B: two segments at 1.5, 1.6 rad. Norms vary: clustering must normalise.
A = np.stack([3.0 * _unit(0.0), 0.5 * _unit(0.05), 2.0 * _unit(0.15)])
B = np.stack([1.5 * _unit(1.5), 4.0 * _unit(1.6)])


def _hand_last_merge(linkage: str) -> float:
    """The A-B merge distance from each linkage's definition (Lance-Williams by hand)."""
    a = [_unit(t) for t in (0.0, 0.05, 0.15)]
    b = [_unit(t) for t in (1.5, 1.6)]
    cos_d = np.array([[1.0 - ai @ bj for bj in b] for ai in a])  # (3, 2) cross distances
    if linkage == "single":
        return cos_d.min()
    if linkage == "complete":
        return cos_d.max()
    if linkage == "average":
        return cos_d.mean()
    if linkage == "weighted":
        # WPGMA: ((a1 + a2) / 2 + a3) / 2 against (b1 + b2) / 2, by the merge tree
        to_b = cos_d.mean(axis=1)
        return 0.5 * (0.5 * (to_b[0] + to_b[1]) + to_b[2])
    c_b = (b[0] + b[1]) / 2
    if linkage == "median":  # WPGMC: centres are midpoints along the merge tree
        return float(np.linalg.norm(((a[0] + a[1]) / 2 + a[2]) / 2 - c_b))
    c_a = (a[0] + a[1] + a[2]) / 3
    if linkage == "centroid":
        return float(np.linalg.norm(c_a - c_b))
    assert linkage == "ward"
    return float(np.sqrt(2 * 3 * 2 / 5) * np.linalg.norm(c_a - c_b))


@pytest.mark.parametrize("linkage", LINKAGES, ids=LINKAGES)
def test_last_merge_distance_by_hand(linkage):
    expected = _hand_last_merge(linkage)
    assert last_merge_distance(np.vstack([A, B]), linkage) == pytest.approx(expected, rel=1e-10)
    assert ahc_score(A, B, linkage) == pytest.approx(-expected, rel=1e-10)


@pytest.mark.parametrize("linkage", LINKAGES, ids=LINKAGES)
def test_last_merge_distance_matches_scipy(rng, linkage):
    points = rng.normal(size=(9, 6))
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    if linkage in EUCLIDEAN_LINKAGES:
        merges = scipy_linkage(unit, method=linkage, metric="euclidean")
    else:
        merges = scipy_linkage(pdist(points, "cosine"), method=linkage)
    assert last_merge_distance(points, linkage) == pytest.approx(merges[-1, 2], rel=1e-9)


@pytest.mark.parametrize("linkage", LINKAGES, ids=LINKAGES)
def test_same_speaker_scores_higher(rng, linkage):
    spk1, spk2 = rng.normal(size=(2, 16))
    utt = [spk + 0.3 * rng.normal(size=(5, 16)) for spk in (spk1, spk1, spk2)]
    assert ahc_score(utt[0], utt[1], linkage) > ahc_score(utt[0], utt[2], linkage)
    assert ds_score(utt[0], utt[1], linkage) > ds_score(utt[0], utt[2], linkage)


@pytest.mark.parametrize("linkage", LINKAGES, ids=LINKAGES)
def test_single_segments_score_their_distance(linkage):
    a, b = np.array([[2.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 0.0]])
    cos = 1 / np.sqrt(2)
    if linkage in EUCLIDEAN_LINKAGES:
        expected = np.sqrt(2 - 2 * cos)  # chord between the unit vectors
    else:
        expected = 1 - cos
    assert ahc_score(a, b, linkage) == pytest.approx(-expected)
    assert ds_score(a, b, linkage) == pytest.approx(-expected)
    assert ahc_score(a, 5 * a, linkage) == pytest.approx(0.0, abs=1e-7)


def test_clustering_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        last_merge_distance(np.ones((1, 4)), "average")
    with pytest.raises(ValueError, match="unknown linkage 'mean'"):
        last_merge_distance(np.eye(3), "mean")
    with pytest.raises(ValueError, match="row 1 has a zero"):
        last_merge_distance(np.array([[1.0, 0.0], [0.0, 0.0]]), "single")


def test_replicator_dynamics_finds_the_tight_pair():
    affinity = np.array([[0.0, 1.0, 0.2], [1.0, 0.0, 0.2], [0.2, 0.2, 0.0]])
    np.testing.assert_allclose(replicator_dynamics(affinity), [0.5, 0.5, 0.0], atol=1e-6)


def test_similarity_matrix_is_shifted_cosine():
    points = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    expected = np.array([[0.0, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.0]])
    np.testing.assert_allclose(similarity_matrix(points), expected, atol=1e-12)


def test_dominant_sets_recover_planted_cluster(rng):
    direction = rng.normal(size=16)
    cluster = direction / np.linalg.norm(direction) + 0.08 * rng.normal(size=(8, 16))
    outliers = rng.normal(size=(3, 16))
    points = np.vstack([cluster, outliers])
    perm = rng.permutation(11)
    sets = dominant_sets(points[perm])
    first = set(perm[sets[0].members].tolist())
    assert first == set(range(8))
    members = np.concatenate([s.members for s in sets])
    assert sorted(members.tolist()) == list(range(11))  # every point exactly once
    for s in sets:
        assert s.weights.sum() == pytest.approx(1.0)
        assert np.all(s.weights > 0)


def test_dominant_set_embeddings_are_weighted_means(rng):
    direction = rng.normal(size=8)
    points = np.vstack([direction + 0.05 * rng.normal(size=(5, 8)), -direction])
    sets = dominant_sets(points)
    emb = dominant_set_embeddings(points)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert emb.shape == (len(sets), 8)
    for row, s in zip(emb, sets, strict=True):
        np.testing.assert_allclose(row, s.weights @ unit[s.members], atol=1e-12)
    np.testing.assert_allclose(emb[-1], unit[5], atol=1e-12)  # the antipode, alone


def test_dominant_sets_degenerate_inputs():
    single = dominant_sets(np.array([[0.0, 3.0]]))
    assert len(single) == 1 and single[0].members.tolist() == [0]
    antipodes = dominant_sets(np.array([[1.0, 0.0], [-2.0, 0.0]]))
    assert [s.members.tolist() for s in antipodes] == [[0], [1]]


def test_mean_baselines_by_hand():
    seg_a = np.array([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0)
    seg_b = np.array([[0.0, 2.0], [2.0, 2.0]])  # mean (1, 2)
    assert mean_dot(seg_a, seg_b) == pytest.approx(2.0)
    assert mean_cossim(seg_a, seg_b) == pytest.approx(1 / np.sqrt(5))
    assert mean_cossim(seg_a[:1], seg_b[:1]) == pytest.approx(0.0)
