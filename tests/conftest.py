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
