"""A seed paper's claim checked against this run's numbers: the verdict the report shows.

A verdict is never written by hand: each report section that reproduces a seed's claim
computes its own (``voxray.report.sections``) from the metrics or the frequency profiles,
and says whether the claim holds on this run, with the numbers that decide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["holds", "does not hold", "partly holds", "not computed"]


@dataclass(frozen=True)
class Verdict:
    """One seed claim and what this run says about it."""

    claim: str
    status: Status
    detail: str


def overall(passed: int, total: int) -> Status:
    """The status of ``passed`` checks out of ``total``."""
    if total == 0:
        return "not computed"
    if passed == total:
        return "holds"
    return "does not hold" if passed == 0 else "partly holds"


def tally(claim: str, passed: int, checks: int, detail: str, unchecked: str) -> Verdict:
    """The verdict of ``passed`` of ``checks`` comparisons; ``unchecked`` says what is missing
    when there were none."""
    if checks == 0:
        return Verdict(claim, "not computed", unchecked)
    return Verdict(claim, overall(passed, checks), detail)
