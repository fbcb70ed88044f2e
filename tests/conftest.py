"""Shared fixtures: seeded RNGs, a module-scoped local Ray, temporary output roots."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``gpu`` tests where CUDA is absent (unless ``-m`` names gpu), so that the default
    run on a GPU machine runs them and a CPU machine does not list them as skipped."""
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


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for one test module (2 CPUs, no dashboard), shut down afterwards."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",  # never another session's cluster running on this machine
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    from voxray.pipeline.ray_env import configure_ray_data

    configure_ray_data(progress_bars=False)  # as every voxray command runs its stages
    yield ray
    ray.shutdown()


@pytest.fixture
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 for one test (dummy credentials); yields its endpoint URL."""
    from voxray.testing.s3 import moto_s3_server

    with moto_s3_server() as endpoint:
        yield endpoint


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
