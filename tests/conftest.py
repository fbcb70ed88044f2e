"""Shared fixtures and the suite's tiers.

Tiers come from the folder a test lives in (``TIERS``): ``unit`` (no Ray, run on every core
by pytest-xdist), ``ray`` (a local Ray), ``e2e`` (whole pipelines), ``cluster`` (multi-node
Ray), ``reliability`` (fault injection), ``jobs`` (``ray job submit``, the browser), ``paper``
(each seed paper's profile end to end: four more whole pipelines, outside the default run and in
``scripts/test.sh --full``). Every test
gets its tier's time limit (pytest-timeout). scripts/test.sh runs two pytest-xdist workers with
``--dist loadfile``: a file's tests run on one worker, so a module's fixtures are made once and
the session's shared smoke run (``smoke_run``) once, its tests being in one file. (xdist's
``loadgroup`` would group across files, but with pytest 9 its groups are not kept: the worker
renames a test's nodeid, which pytest 9 ignores.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# two xdist workers share the cores: one torch thread per pool actor (ray_env.actor_threads)
os.environ.setdefault("VOXRAY_ACTOR_THREADS", "1")

#: tests/<folder> -> (marker, time limit in seconds of one test, its fixtures' set-up included).
#: Limits are generous (a 2-core machine under load); a test past one has hung.
TIERS = {
    "unit": ("unit", 300),
    "ray": ("ray", 1800),
    "e2e": ("e2e", 2400),
    "paper": ("paper", 2400),
    "cluster": ("cluster", 1800),
    "reliability": ("reliability", 1500),
    "jobs": ("jobs", 900),
    "gpu": ("gpu", 900),
}
#: fixtures that start or need Ray (or a whole pipeline): never in a unit test.
RAY_FIXTURES = {"ray_local", "smoke_run"}


def _tier(item: pytest.Item) -> str | None:
    parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier and time limit; refuse a unit test that
    asks for a Ray fixture; deselect ``gpu`` tests where CUDA is absent (unless ``-m`` names
    gpu), so that a GPU machine's default run runs them and a CPU machine does not list them."""
    misplaced = []
    for item in items:
        tier = _tier(item)
        if tier is None:
            continue
        marker, limit = TIERS[tier]
        item.add_marker(getattr(pytest.mark, marker))
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))
        if tier == "unit":
            misplaced += [f"{item.nodeid} ({f})" for f in RAY_FIXTURES & set(item.fixturenames)]
    if misplaced:
        raise pytest.UsageError(
            "unit tests must not use Ray: move these to tests/ray or drop the fixture: "
            + ", ".join(misplaced)
        )
    if torch.cuda.is_available() or "gpu" in (config.getoption("markexpr") or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(1234)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tests on tiny tensors: on a busy 2-core machine
    spinning threads make them many times slower (restored after the module). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _start_local_ray():
    import ray

    ray.init(
        address="local",  # never another session's cluster running on this machine
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    from voxray.config import RayConfig
    from voxray.pipeline.ray_env import configure_ray_data

    # as every voxray command runs its stages
    configure_ray_data(progress_bars=False, no_progress_timeout_s=RayConfig().no_progress_timeout_s)
    return ray


@pytest.fixture(scope="session")
def _session_ray() -> Iterator[None]:
    """Shuts down the session's local Ray at the end (started lazily by ``ray_local``)."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_local(_session_ray):
    """The test session's local Ray (2 CPUs, no dashboard): started by the first module that
    asks, kept for the next (a Ray start costs seconds), started again after a module that
    connected elsewhere (a multi-node cluster) and shut it down."""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().gcs_address and _is_local_ray():
        return ray
    if ray.is_initialized():
        ray.shutdown()
    return _start_local_ray()


def _is_local_ray() -> bool:
    """Whether the connected Ray is the one ``_start_local_ray`` started (its 2 CPUs and one
    node), not a test's multi-node cluster."""
    import ray

    return len(ray.nodes()) == 1 and ray.cluster_resources().get("CPU") == 2


@pytest.fixture
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 for one test (dummy credentials); yields its endpoint URL."""
    from tests.support.s3 import moto_s3_server

    with moto_s3_server() as endpoint:
        yield endpoint


#: the one generated corpus of the session: 6 speakers (3 held out for testing) x 2 videos x 2.
CORPUS = {"speakers": 6, "videos": 2, "utts": 2, "seed": 11, "test_speakers": 3}


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's generated VoxCeleb1-layout corpus (``CORPUS``), shared by every test that
    runs voxray on audio; tests that change files copy it first."""
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("corpus") / "vox1"
    synth_corpus(str(root), jobs=2, **CORPUS)
    return root


@dataclass(frozen=True)
class SmokeRun:
    """The session's one whole ``voxray run --profile smoke``: on a local 3-node cluster (a
    head without CPUs and two 2-CPU workers, through RAY_ADDRESS) with ``--out`` on s3:// (a
    moto server), so one run shows every stage, the lock and the Tune sweep on a cluster and
    on s3:// together. ``local`` is a copy of ``out`` for the readers that take a folder."""

    corpus: Path
    out: str
    endpoint: str
    local: Path
    log: str

    def storage(self):
        from voxray.config import S3Config
        from voxray.io.storage import Storage

        return Storage(self.out, S3Config(endpoint_url=self.endpoint))

    @property
    def endpoint_override(self) -> str:
        return f"corpus.s3.endpoint_url={self.endpoint}"


@pytest.fixture(scope="session")
def s3_session() -> Iterator[str]:
    """A moto S3 server for the whole session (the shared smoke run's output lives there)."""
    from tests.support.s3 import moto_s3_server

    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def smoke_run(
    smoke_corpus: Path, s3_session: str, tmp_path_factory: pytest.TempPathFactory
) -> SmokeRun:
    """See ``SmokeRun``. A failed run fails every test that uses it, with the run's log."""
    from tests.support.cluster import LocalCluster
    from tests.support.pipeline import run_profile
    from tests.support.s3 import create_bucket, download_tree

    create_bucket("voxray-smoke", s3_session)
    out = "s3://voxray-smoke/out"
    cluster = LocalCluster(2)  # after the S3 server: its raylets inherit the credentials
    try:
        proc = run_profile(
            smoke_corpus,
            out,
            "smoke",
            f"corpus.s3.endpoint_url={s3_session}",
            env={"RAY_ADDRESS": cluster.address},
            timeout=2100,
            check=False,
        )
    finally:
        cluster.shutdown()
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"the shared smoke run exited {proc.returncode}; its log:\n{log[-20000:]}")
    local = tmp_path_factory.mktemp("smoke") / "out"
    download_tree(out, local, s3_session)
    return SmokeRun(corpus=smoke_corpus, out=out, endpoint=s3_session, local=local, log=log)


# ------------------------------------------------------------------ unexpected skips fail CI
#: the skip reasons a CI run may show (regular expressions matched at the start of the reason),
#: each with why. Set-up (scripts/setup.sh) installs everything else the suite needs (ffmpeg,
#: espeak-ng, chromium, the asterisk prompts, resemblyzer), so any other skip in CI is a broken
#: set-up hiding tests: with the environment variable CI set, it fails the session.
ALLOWED_SKIPS: dict[str, str] = {
    r"needs CUDA": "CI runners have no GPU; tests/gpu run on a CUDA machine (they are deselected "
    "elsewhere, and skip only when `-m gpu` selects them on a CPU machine)",
}


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _unexpected_skips(config: pytest.Config) -> list[tuple[str, str]]:
    import re

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reports = reporter.stats.get("skipped", []) if reporter is not None else []
    found = [(r.nodeid, _skip_reason(r)) for r in reports if not hasattr(r, "wasxfail")]
    return [(n, why) for n, why in found if not any(re.match(p, why) for p in ALLOWED_SKIPS)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CI set, a skip whose reason is not in ALLOWED_SKIPS fails the session."""
    if os.environ.get("CI") and _unexpected_skips(session.config) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not os.environ.get("CI"):
        return
    unexpected = _unexpected_skips(config)
    if unexpected:
        terminalreporter.section("unexpected skips (CI fails on these)", red=True)
        for nodeid, reason in unexpected:
            terminalreporter.write_line(f"{nodeid}: {reason}")
        terminalreporter.write_line(
            "allowed: " + "; ".join(f"{p} ({why})" for p, why in ALLOWED_SKIPS.items())
        )
