"""The name of a masked-data condition: one format, written by the mask stage, read by the report.

masked/'s ``condition`` column holds ``<method>/<pathway>/<rule>[:<reading>][@<value>][/shuffled]``
(``MaskCondition.name``); the scores and metrics computed on that data carry it as
``masked:<name>``. ``ConditionName`` formats it and ``parse_masked`` reads it back, so the writer
and the report's reader cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the prefix of the ``condition`` value of scores and metrics on masked data.
MASKED_PREFIX = "masked:"
#: the pathway segment of a condition whose Classification maps cover the model's training
#: speakers only, every other utterance being masked along Traversal (``MaskCondition``).
SEEN_CLASSIFICATION = "seen-classification"
#: the last segment of a shuffled-map control condition's name.
SHUFFLED = "shuffled"


@dataclass(frozen=True)
class ConditionName:
    """The parts of a masked condition's name; ``str()`` is the name."""

    method: str
    #: as named: ``seen-classification`` for the Classification pathway.
    pathway: str
    rule: str
    #: the threshold (threshold) or top fraction (moore); None for the rules without one.
    value: float | None = None
    #: the threshold's reading (signed / magnitude); None for the other rules.
    reading: str | None = None
    #: True for the shuffled-map control.
    shuffled: bool = False

    def __str__(self) -> str:
        rule = f"{self.rule}:{self.reading}" if self.reading else self.rule
        if self.value is not None:
            rule = f"{rule}@{self.value:g}"
        name = f"{self.method}/{self.pathway}/{rule}"
        return f"{name}/{SHUFFLED}" if self.shuffled else name

    @property
    def masked(self) -> str:
        """The ``condition`` value of scores and metrics computed on data masked this way."""
        return f"{MASKED_PREFIX}{self}"


def parse_masked(condition: str) -> ConditionName | None:
    """The parts of a ``masked:`` condition value, or None for any other value."""
    if not condition.startswith(MASKED_PREFIX):
        return None
    parts = condition[len(MASKED_PREFIX) :].split("/")
    shuffled = len(parts) == 4 and parts[3] == SHUFFLED
    if len(parts) != 3 + shuffled:
        return None
    rule, _, raw = parts[2].partition("@")
    rule, _, reading = rule.partition(":")
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return ConditionName(parts[0], parts[1], rule, value, reading or None, shuffled)


def own_maps_condition(condition: str) -> str:
    """The condition a shuffled-map control controls (the same name without ``/shuffled``)."""
    return condition.removesuffix(f"/{SHUFFLED}")
