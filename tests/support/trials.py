"""A few verification trials over six utterances and the cosine, one pair at a time in float64,
that the vectorised trial scorers (cosine, AS-norm) are checked against."""

from __future__ import annotations

import numpy as np

#: six utterances of two videos; utterance 4 is also trialled against itself.
UTTS = [f"id1000{i}/vid{i % 2}/0000{i}.wav" for i in range(6)]
TRIALS = [
    (1, UTTS[0], UTTS[1]),
    (0, UTTS[0], UTTS[2]),
    (1, UTTS[3], UTTS[4]),
    (0, UTTS[5], UTTS[0]),
    (0, UTTS[2], UTTS[5]),
    (1, UTTS[4], UTTS[4]),
]


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    """The cosine of two embeddings in float64, whatever their dtype."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def loop_cosine(trials: list[tuple[int, str, str]], emb: dict[str, np.ndarray]) -> np.ndarray:
    """Each trial's cosine score, by a plain loop."""
    return np.array([cosine(emb[a], emb[b]) for _, a, b in trials])
