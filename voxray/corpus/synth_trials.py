"""Trial lists and the identification split of a synthetic corpus, in VoxCeleb1's formats.

veri_test2.txt is built like the original: for each test utterance (the enrollment side)
a few same-speaker trials, always against another video of the speaker, alternating with
as many different-speaker trials (one of the same gender, one of the other where possible).
list_test_hard2.txt does the same with negatives of the same gender and nationality only,
as VoxCeleb1-H. Unordered pairs are never repeated.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from voxray.corpus.synth_plan import SpeakerPlan

Line = tuple[int, str, str]
Pools = Callable[[SpeakerPlan], list[list[SpeakerPlan]]]


def veri_trials(
    plans: list[SpeakerPlan], rng: np.random.Generator, per_side: int = 2
) -> list[Line]:
    """Balanced trials among the test speakers; negatives alternate same / other gender."""
    test = [p for p in plans if p.set == "test"]

    def pools(p: SpeakerPlan) -> list[list[SpeakerPlan]]:
        others = [q for q in test if q is not p]
        same = [q for q in others if q.gender == p.gender] or others
        other = [q for q in others if q.gender != p.gender] or others
        return [same, other]

    return _trials(test, pools, rng, per_side)


def hard_trials(
    plans: list[SpeakerPlan], rng: np.random.Generator, per_side: int = 2
) -> list[Line]:
    """Balanced trials whose negatives share gender and nationality (speakers without such a peer
    are skipped)."""
    test = [p for p in plans if p.set == "test"]

    def pools(p: SpeakerPlan) -> list[list[SpeakerPlan]]:
        peers = [
            q
            for q in test
            if q is not p and q.gender == p.gender and q.nationality == p.nationality
        ]
        return [peers] if peers else []

    return _trials(test, pools, rng, per_side)


def iden_split_lines(plans: list[SpeakerPlan]) -> list[tuple[int, str]]:
    """(split, path) for the dev speakers: the last video tests (3), the last utterance of the
    video before it validates (2), the rest trains (1); sorted by path."""
    lines = []
    for p in plans:
        if p.set != "dev":
            continue
        paths = p.list_paths()
        for v, video in enumerate(paths):
            for u, path in enumerate(video):
                if v == len(paths) - 1:
                    split = 3
                elif v == len(paths) - 2 and u == len(video) - 1 and len(video) >= 2:
                    split = 2
                else:
                    split = 1
                lines.append((split, path))
    return sorted(lines, key=lambda line: line[1])


def _trials(
    test: list[SpeakerPlan], pools: Pools, rng: np.random.Generator, per_side: int
) -> list[Line]:
    """For each enrollment utterance: up to ``per_side`` positives from other videos, and as many
    negatives, drawn in turn from the speaker pools ``pools(p)`` returns."""
    seen: set[frozenset[str]] = set()
    lines: list[Line] = []
    for p in test:
        neg_pools = pools(p)
        if not neg_pools:
            continue
        videos = p.list_paths()
        for v, video in enumerate(videos):
            for enrol in video:
                other_videos = [x for w, vid in enumerate(videos) if w != v for x in vid]
                fresh = [x for x in other_videos if frozenset((enrol, x)) not in seen]
                pos = [fresh[int(k)] for k in rng.permutation(len(fresh))[:per_side]]
                neg: list[str] = []
                for k in range(len(pos)):
                    taken = seen | {frozenset((enrol, x)) for x in neg}
                    pick = _negative(enrol, neg_pools[k % len(neg_pools)], taken, rng)
                    if pick is not None:
                        neg.append(pick)
                for a, b in zip(pos, neg, strict=False):
                    seen.update((frozenset((enrol, a)), frozenset((enrol, b))))
                    lines += [(1, enrol, a), (0, enrol, b)]
    return lines


def _negative(
    enrol: str, pool: list[SpeakerPlan], seen: set[frozenset[str]], rng: np.random.Generator
) -> str | None:
    """A random utterance of a random speaker from ``pool`` not yet paired with ``enrol``."""
    for _ in range(20):
        q = pool[int(rng.integers(len(pool)))]
        paths = [x for vid in q.list_paths() for x in vid]
        pick = paths[int(rng.integers(len(paths)))]
        if frozenset((enrol, pick)) not in seen:
            return pick
    return None
