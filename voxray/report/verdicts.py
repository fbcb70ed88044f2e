"""A seed paper's claim checked against this run's numbers: the verdict the report shows.

A verdict is never written by hand: each report section that reproduces a seed's claim
states the claim's effect as the paper does (a difference or a ratio, with the tolerance the
profile writes in ``report.verdicts``) and judges it by the effect's interval
(voxray.eval.intervals), never by its point value:

- ``holds`` when the whole interval lies on the claim's side of the bound,
- ``fails`` when it lies wholly on the other side,
- ``inconclusive`` when it straddles the bound (the run cannot tell),
- ``not computed`` when the run has no numbers for it.

A claim with several checks (one per trial list, per condition ...) holds when every check
holds, fails when any fails, and is inconclusive otherwise. The detail shows each deciding
interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from voxray.eval.intervals import Interval

Status = Literal["holds", "fails", "inconclusive", "not computed"]
#: which side of the bound the claim puts the effect on.
Side = Literal["below", "above"]


@dataclass(frozen=True)
class Verdict:
    """One seed claim and what this run says about it."""

    claim: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Check:
    """One comparison the claim makes, its status and the interval text that decided it."""

    status: Status
    shown: str


def _status(where: int, side: Side) -> Status:
    """The status of an interval lying above (+1), below (-1) or across (0) the bound."""
    if where == 0:
        return "inconclusive"
    return "holds" if (where < 0) == (side == "below") else "fails"


def _interval_text(ci: Interval, scale: float, unit: str) -> str:
    return f"{scale * ci.value:.3g}{unit} [{scale * ci.ci_low:.3g}, {scale * ci.ci_high:.3g}]"


def against_bound(
    label: str, effect: Interval, bound: float, side: Side, scale: float = 1.0, unit: str = ""
) -> Check:
    """The check that ``effect``'s interval lies ``side`` ``bound`` (e.g. a ratio below 1.21)."""
    if not (math.isfinite(effect.ci_low) and math.isfinite(effect.ci_high)):
        return Check("inconclusive", f"{label}: {scale * effect.value:.3g}{unit}, no interval")
    status = _status(effect.excludes(bound), side)
    relation = "<" if side == "below" else ">"
    text = _interval_text(effect, scale, unit)
    return Check(status, f"{label}: {text}, claim {relation} {scale * bound:g}{unit}: {status}")


def between(
    label: str, a: Interval, b: Interval, side: Side, scale: float = 1.0, unit: str = ""
) -> Check:
    """The check that ``a`` lies ``side`` ``b`` when only their own intervals are known (two
    metrics/ rows): ``holds`` when the intervals are disjoint on the claim's side. Where both
    come from one trial list, a paired effect (``against_bound``) is the sharper test."""
    if not all(math.isfinite(x) for x in (a.ci_low, a.ci_high, b.ci_low, b.ci_high)):
        return Check(
            "inconclusive",
            f"{label}: {scale * a.value:.3g}{unit} vs {scale * b.value:.3g}{unit}, no interval",
        )
    if a.ci_high < b.ci_low:
        where = -1
    elif a.ci_low > b.ci_high:
        where = 1
    else:
        where = 0
    status = _status(where, side)
    relation = "<" if side == "below" else ">"
    shown = f"{_interval_text(a, scale, unit)} vs {_interval_text(b, scale, unit)}"
    return Check(status, f"{label}: {shown}, claim {relation}: {status}")


def verdict(claim: str, checks: list[Check], unchecked: str, method: str = "") -> Verdict:
    """The claim's verdict from its checks; ``unchecked`` says what is missing when there are
    none; ``method`` names how the intervals were made."""
    if not checks:
        return Verdict(claim, "not computed", unchecked)
    statuses = {c.status for c in checks}
    status: Status
    if "fails" in statuses:
        status = "fails"
    elif statuses == {"holds"}:
        status = "holds"
    else:
        status = "inconclusive"
    detail = "; ".join(c.shown for c in checks)
    return Verdict(claim, status, f"{detail} ({method})" if method else detail)
