"""What the 003 sweeps (LSTM width, segment length) share: the test trials they score and
each EER with its speaker-bootstrap interval, reported to Tune as flat numbers and read back
as metrics/ rows.

A trial reports ``<stat>.<scorer>`` for stat in ``STATS`` (Tune keeps the last report of a
trial), and ``metric_rows`` turns a finished sweep into one metrics/ row per swept value and
scorer: list = the sweep's name, condition = ``<param>=<value>``, metric ``eer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from voxray.config.evaluation import IntervalConfig
from voxray.eval.intervals import verification_interval
from voxray.schema import MetricRow

#: what a trial reports per scorer: the EER, its interval and the trials it is computed from.
STATS = ("eer", "ci_low", "ci_high", "n")


@dataclass
class SweepTest:
    """The test side of a sweep: features of the utterances the trials name."""

    feats: dict[str, np.ndarray]
    #: ``(label, utt_a, utt_b)``; utterance ids are ``speaker/video/file``.
    trials: list[tuple[int, str, str]]

    @property
    def labels(self) -> np.ndarray:
        return np.array([t[0] for t in self.trials])

    @property
    def enrol_speakers(self) -> np.ndarray:
        """Each trial's enrolment speaker, the unit the interval resamples."""
        return np.array([t[1].split("/")[0] for t in self.trials])


def eer_report(
    scorer: str, scores: np.ndarray, test: SweepTest, intervals: IntervalConfig
) -> dict[str, float]:
    """``{<stat>.<scorer>: ...}``: the EER of ``scores`` on ``test``'s trials with its interval."""
    ci = verification_interval(
        scores,
        test.labels,
        test.enrol_speakers,
        confidence=intervals.confidence,
        n_resamples=intervals.resamples,
        seed=intervals.seed,
    )
    values = (ci.value, ci.ci_low, ci.ci_high, float(ci.n))
    return {f"{stat}.{scorer}": v for stat, v in zip(STATS, values, strict=True)}


def metric_rows(
    model: str, sweep: str, param: str, reports: list[tuple[Any, dict[str, Any]]]
) -> list[MetricRow]:
    """metrics/ rows of a finished sweep from ``(swept value, last report)`` pairs."""
    rows = []
    for value, report in sorted(reports, key=lambda p: float(p[0])):
        scorers = sorted(k.removeprefix("eer.") for k in report if k.startswith("eer."))
        for scorer in scorers:
            n = report.get(f"n.{scorer}")
            rows.append(
                MetricRow(
                    model,
                    f"{param}={value}",
                    sweep,
                    scorer,
                    "eer",
                    float(report[f"eer.{scorer}"]),
                    ci_low=float(report[f"ci_low.{scorer}"]),
                    ci_high=float(report[f"ci_high.{scorer}"]),
                    n=int(n) if n is not None else None,
                )
            )
    return rows
