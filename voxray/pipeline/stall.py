"""When an actor-pool stage has stopped for good: no rows done for ``resources.stall_timeout_s``
while a node it ran on is gone.

A node lost without drain takes its pool actors with it. Ray restarts them on the other nodes
only where there is room (a pool sized to the GPUs there were has none), and the tasks they
held wait on that restart for ever: the stage hangs, its other actors idle. A stall alone does
not stop a stage (one batch of a big model on a CPU may take minutes), nor does a lost node
alone (its actors may restart on the survivors and the stage finish there): the two together
do, with a message naming the node and the rows left, which a rerun resumes from. A pool that
fails outright while a node of it is lost (Ray's error for an actor gone with its node) gets the
same message, the Ray error kept as its cause.

Pure bookkeeping, no Ray calls: the pool's driver thread (``pipeline.progress``) feeds it counts,
times and ``ray.nodes()`` lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voxray.nodes import node_name


class LostNodeError(RuntimeError):
    """A stage stopped after losing a node it ran on: no progress for its stall timeout, or
    its pool (or its training run) failed with Ray's error for what went with the node."""


def failed_with(error: BaseException) -> str:
    """``error`` in a few words: its type and its first line."""
    return f"failed with {type(error).__name__} ({(str(error).splitlines() or [''])[0][:200]})"


def lost_node_message(label: str, what: str, lost: list[dict], resume: str) -> str:
    """LostNodeError's message: what happened to ``label``, the nodes lost, how to go on."""
    names = ", ".join(node_name(n) for n in lost)
    return f"{label}: {what} after losing Ray node {names}; {resume}"


@dataclass(frozen=True)
class Done:
    """Input rows a pool has computed and output rows its sink has written (committed)."""

    computed: int = 0
    written: int = 0


@dataclass
class StallWatch:
    """One stage's progress history and the nodes it has seen alive.

    ``since`` is when the counts last changed (a change, not a rise: the counter actor restarted
    on another node counts from zero again, and that is progress too)."""

    label: str
    total: int | None
    timeout_s: float
    since: float
    done: Done = field(default_factory=Done)
    seen: dict[str, dict] = field(default_factory=dict)

    def rows(self, done: Done, now: float) -> None:
        if done != self.done:
            self.done, self.since = done, now

    def idle_s(self, now: float) -> float:
        return now - self.since

    def nodes(self, nodes: list[dict]) -> None:
        """Remember every node listed alive: one that joins mid-stage and dies counts too."""
        self.seen.update({n["NodeID"]: n for n in nodes if n.get("Alive")})

    def lost(self, nodes: list[dict]) -> list[dict]:
        """The nodes seen alive that ``nodes`` (``ray.nodes()``) lists dead or not at all."""
        alive = {n["NodeID"] for n in nodes if n.get("Alive")}
        return [n for node_id, n in sorted(self.seen.items()) if node_id not in alive]

    def verdict(self, nodes: list[dict], now: float) -> str | None:
        """None to go on; the error message when the stage has been idle for the timeout and a
        node it ran on is lost."""
        self.nodes(nodes)
        lost = self.lost(nodes)
        if self.idle_s(now) < self.timeout_s or not lost:
            return None
        idle = f"no rows done for {self.idle_s(now):.0f} s"
        return self.message(f"{idle} (resources.stall_timeout_s={self.timeout_s:g})", lost)

    def failure(self, nodes: list[dict], error: BaseException) -> str | None:
        """The message for a pool that failed with ``error`` (Ray's, for an actor that went
        with its node) while a node it ran on is lost; None when every node is there."""
        lost = self.lost(nodes)
        return self.message(failed_with(error), lost) if lost else None

    def message(self, what: str, lost: list[dict]) -> str:
        return lost_node_message(
            self.label, what, lost, f"{self.rows_line()}; rerun to resume on the nodes there are"
        )

    def rows_line(self) -> str:
        """Input rows computed and left (a retried task counts twice: capped at the total),
        and output rows written (a stage may write several per input row)."""
        written = f"{self.done.written} output rows written"
        if self.total is None:
            return f"{self.done.computed} rows computed, {written}"
        computed = min(self.done.computed, self.total)
        left = self.total - computed
        return f"{computed} of {self.total} rows computed, {left} left to compute, {written}"
