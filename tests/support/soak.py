"""The soak's parts (tests/reliability/test_soak.py): a gate in front of the local S3 server
that can go down for a few seconds and come back with its data, the faults of one run drawn
from a seed, and the table of faults fired and survived, reruns needed and rows lost or
duplicated, per fault kind and stage."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from voxray.pipeline.stages import STAGE_NAMES

#: the stages whose actors or training workers take an injected fault (``voxray.faults``).
ACTOR_STAGES = ("features", "train", "embed", "attribute", "trial", "mask", "retrain", "tune")
#: stages whose hook is called once per epoch or trial in a fresh process: only the first call
#: is sure to come (train's per-process epoch count, tune's trial).
ONCE_STAGES = ("train", "retrain", "tune")

#: fault kinds, as the table names them.
WORKER_KILLED = "worker killed"
BATCH_RAISED = "batch raised"
NODE_LOST = "node lost (fresh one added)"
DRIVER_KILLED = "driver killed (run restarted)"
S3_OUTAGE = "S3 outage"
KINDS = (WORKER_KILLED, BATCH_RAISED, NODE_LOST, DRIVER_KILLED, S3_OUTAGE)

#: the pipeline's stages in the order a run reaches them ('-': before the first).
ORDER = ("-", *STAGE_NAMES)
#: the stages an outside fault is aimed at: every one that runs on the workers.
TARGET_STAGES = (*ACTOR_STAGES, "evaluate")
#: a run's faults: actor or training faults and worker nodes lost, each in a stage of its own
#: (drawn, not timed: a fault slows the stage it hits, so faults timed as shares of a run pile
#: up in its longest stage), the driver killed and an S3 outage, each in a stage drawn from
#: every one. Eleven a run: the default three runs give the issue's 30 faults with 12 node
#: losses in under 30 minutes on a 2-core machine.
ACTOR_FAULTS = 5
NODE_LOSSES = 4
#: how long after its stage is seen starting a fault comes, in seconds.
DELAY_S = (0.5, 6.0)

_STARTED = re.compile(r"INFO stage (\w+): started")


class S3Gate:
    """A TCP relay from a local port to the S3 server. ``outage(seconds)`` drops every open
    connection and answers each new one by closing it, for ``seconds``: the server is
    unreachable to every process of the run (driver and Ray workers alike) and comes back with
    its data, as a real outage does (stopping moto would lose its buckets)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def outage(self, seconds: float) -> None:
        """Down for ``seconds`` (blocks meanwhile), then up again."""
        self._down.set()
        with self._lock:
            for s in list(self._open):
                _close(s)
            self._open.clear()
        time.sleep(seconds)
        self._down.clear()

    def close(self) -> None:
        self._closed = True
        _close(self._server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._down.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@dataclass(frozen=True)
class Disturbance:
    """A fault from outside the run (node, driver or s3), ``delay`` seconds after the run is
    seen reaching ``stage`` (at once when it is already past it, as a rerun that skips the
    stages done is)."""

    kind: str
    stage: str
    delay: float
    seconds: float = 0.0  # an outage's length


def reached(running: str, stage: str) -> bool:
    """Whether a run whose log last started ``running`` has reached ``stage``."""
    return ORDER.index(running) >= ORDER.index(stage)


@dataclass(frozen=True)
class RunPlan:
    """The faults of one soak run: ``VOXRAY_FAULTS`` (actor and training faults, each firing
    once) and the disturbances in the order they come."""

    spec: str
    disturbances: tuple[Disturbance, ...]


def draw_plan(rng: random.Random) -> RunPlan:
    """One run's faults: ``ACTOR_FAULTS`` in stages of their own, ``NODE_LOSSES`` node losses
    in stages of their own, the driver killed and an S3 outage of 3-8 s, in the order the run
    reaches their stages."""
    spec = ",".join(
        f"{s}:{1 if s in ONCE_STAGES else rng.randint(1, 2)}:{rng.choice(['kill', 'raise'])}"
        for s in rng.sample(ACTOR_STAGES, ACTOR_FAULTS)
    )
    nodes = [
        Disturbance("node", s, rng.uniform(*DELAY_S))
        for s in rng.sample(TARGET_STAGES, NODE_LOSSES)
    ]
    driver = Disturbance("driver", rng.choice(TARGET_STAGES), rng.uniform(*DELAY_S))
    s3 = Disturbance("s3", rng.choice(TARGET_STAGES), rng.uniform(*DELAY_S), rng.uniform(3, 8))
    ordered = sorted([*nodes, driver, s3], key=lambda d: (ORDER.index(d.stage), d.delay))
    return RunPlan(spec, tuple(ordered))


def fired_actor_faults(spec: str, fault_dir: Path) -> list[tuple[str, str]]:
    """(kind, stage) of each fault of ``spec`` whose marker says it fired."""
    fired = {p.name.removeprefix("voxray-fault-") for p in fault_dir.iterdir()}
    out = []
    for item in spec.split(","):
        stage, _, mode = item.split(":")
        if stage in fired:
            out.append((WORKER_KILLED if mode == "kill" else BATCH_RAISED, stage))
    return out


def failed_clearly(stderr: str) -> bool:
    """Whether a failed run's log ends with voxray's error: a line ``voxray: ...`` (its message
    may run on over several lines, as a training failure's worker snippet does) after the last
    of voxray's log lines."""
    lines = stderr.splitlines()
    error = max((i for i, ln in enumerate(lines) if ln.startswith("voxray:")), default=-1)
    logged = max((i for i, ln in enumerate(lines) if ln.startswith("[voxray]")), default=-1)
    return error > logged


def running_stage(stderr: Path) -> str:
    """The stage the run's log last said it started ('-' before the first)."""
    found = _STARTED.findall(stderr.read_text(errors="replace")) if stderr.exists() else []
    return found[-1] if found else "-"


@dataclass
class Counts:
    fired: int = 0
    survived: int = 0
    rerun: int = 0
    lost: int = 0
    duplicated: int = 0


@dataclass
class SoakTable:
    """Per (fault kind, stage): faults fired; survived (their run ended complete, no row lost
    or duplicated against the undisturbed reference); rerun needed (an attempt failed because of
    them); the
    rows lost and duplicated in their runs. Totals count runs once each."""

    cells: dict[tuple[str, str], Counts] = field(default_factory=lambda: defaultdict(Counts))
    runs: int = 0
    reruns: int = 0
    lost: int = 0
    duplicated: int = 0
    failed_runs: list[str] = field(default_factory=list)

    def add_run(
        self,
        name: str,
        fired: list[tuple[str, str]],
        needed_rerun: list[bool],
        reruns: int,
        complete: bool,
        lost: int,
        duplicated: int,
    ) -> None:
        """``needed_rerun``: for each fault of ``fired``, whether an attempt failed because of
        it (``RunOutcome.needed_rerun``)."""
        self.runs += 1
        self.reruns += reruns
        self.lost += lost
        self.duplicated += duplicated
        ok = complete and lost == 0 and duplicated == 0
        if not ok:
            self.failed_runs.append(name)
        for key, rerun in zip(fired, needed_rerun, strict=True):
            c = self.cells[key]
            c.fired += 1
            c.survived += ok
            c.rerun += rerun
            c.lost += lost
            c.duplicated += duplicated

    def fired(self, kind: str | None = None) -> int:
        return sum(c.fired for (k, _), c in self.cells.items() if kind in (None, k))

    def survived(self) -> int:
        return sum(c.survived for c in self.cells.values())

    def markdown(self) -> str:
        """The table, then the totals, in Markdown."""
        lines = [
            "| fault | stage | fired | survived | rerun needed | rows lost | rows duplicated |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        order = {k: i for i, k in enumerate(KINDS)}
        stages = {s: i for i, s in enumerate(ORDER)}
        for (kind, stage), c in sorted(
            self.cells.items(), key=lambda kv: (order[kv[0][0]], stages.get(kv[0][1], 99))
        ):
            lines.append(
                f"| {kind} | {stage} | {c.fired} | {c.survived} | {c.rerun} | {c.lost} "
                f"| {c.duplicated} |"
            )
        lines.append(
            f"| **all** | | **{self.fired()}** | **{self.survived()}** | | **{self.lost}** "
            f"| **{self.duplicated}** |"
        )
        lines += [
            "",
            f"{self.runs} runs, {self.fired()} faults fired ({self.fired(NODE_LOST)} node "
            f"losses), {self.survived()} survived; {self.reruns} reruns needed; rows lost "
            f"{self.lost}, duplicated {self.duplicated}; runs not recovered: "
            f"{', '.join(self.failed_runs) or 'none'}.",
        ]
        return "\n".join(lines)
