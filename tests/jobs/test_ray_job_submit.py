"""The real client path: a local Ray head with token authentication, `ray job submit` of the
ray_jobs/ entrypoints, outputs checked; a submission without the token is refused."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from tests.support.pipeline import kill_private_ray, private_ray_env

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, token_file: Path | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"
    }
    env.update(HOME=str(home), RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    # The job entrypoint says `python`, as users write it: it must be this environment's, as it is
    # for a user with the venv activated (CI calls .venv/bin/python without activating it).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if token_file is not None:
        env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    return env


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    base = tmp_path_factory.mktemp("head")
    token = base / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**_env(base, token), **private_ray_env()}  # torn down without `ray stop`: see below
    # Every port its own: the job agent's HTTP port defaults to 52365, and while another Ray on
    # the machine (a parallel test worker's) holds it, this head's agent serves no jobs at all
    # ("No available agent to submit job", for ever: CI's failure of 2026-12-06).
    gcs, dash, agent = _free_port(), _free_port(), _free_port()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--dashboard-agent-listen-port={agent}",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=180,
    )
    url = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 90
    while time.time() < deadline:  # the job server comes up a little after `ray start` returns
        try:
            requests.get(f"{url}/api/version", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(1)
    yield url, env, base
    kill_private_ray(env)  # `ray stop --force` would also stop every other Ray on the machine


#: Ray's answer while the head's job agent is still starting (seen on a loaded machine): the
#: submission was not accepted, so it is safe to submit again.
AGENT_NOT_READY = "No available agent to submit job"


def _submit(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``ray job submit`` of ``python *args``, again while Ray says its job agent is not up yet
    (for up to two minutes: on a loaded machine the agent registers a while after the head
    answers): any other failure is returned as it is."""
    deadline = time.time() + 120
    while True:
        proc = subprocess.run(
            [RAY, "job", "submit", "--address", url, "--working-dir", str(ROOT), "--", "python"]
            + list(args),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=ROOT,
        )
        if AGENT_NOT_READY not in proc.stderr + proc.stdout or time.time() > deadline:
            return proc
        time.sleep(5)


def test_submitted_feature_job_succeeds(ray_head, tmp_path: Path) -> None:
    from voxray.corpus.synth import synth_corpus

    url, env, _ = ray_head
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    synth_corpus(str(corpus), speakers=4, videos=2, utts=2, seed=3, jobs=2)
    for stage in ("manifest", "features"):
        proc = _submit(
            url,
            env,
            f"ray_jobs/{stage}.py",
            "--config",
            f"conf/{stage}.yaml",
            "--profile",
            "smoke",
            "--data-root",
            str(corpus),
            "--out",
            str(out),
            "features.resources.concurrency=1",
            "corpus.resources.concurrency=1",
            "features.resources.num_cpus=1",
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "succeeded" in (proc.stdout + proc.stderr).lower()
    manifest = pq.read_table(out / "manifest.parquet")
    feats = pq.ParquetDataset(out / "features").read()
    assert manifest.num_rows == 16
    assert set(feats.column("utt_id").to_pylist()) == set(manifest.column("utt_id").to_pylist())


def test_submission_without_token_is_refused(ray_head, tmp_path: Path) -> None:
    url, env, _ = ray_head
    stranger = _env(tmp_path, None)  # an empty HOME: no ~/.ray/auth_token either
    proc = subprocess.run(
        [RAY, "job", "submit", "--address", url, "--", "python", "-c", "print('owned')"],
        env=stranger,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "owned" not in proc.stdout
    assert requests.get(f"{url}/api/jobs/", timeout=5).status_code in (401, 403)


def _own_ipv4_addresses() -> set[str]:
    """This machine's IPv4 addresses: the host name's, and the one outbound traffic would use
    (a UDP connect sends nothing)."""
    addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
            addrs.add(s.getsockname()[0])
        except OSError:
            pass
    return addrs


#: another loopback address (all of 127.0.0.0/8 is the loopback interface on Linux): a server
#: bound to every address (0.0.0.0) answers on it, one bound to 127.0.0.1 alone does not. A
#: sandbox with only the loopback interface has no other address to probe (the test skipped
#: there before), this one it always has.
OTHER_LOOPBACK = "127.0.0.2"


def _reachable(addr: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((addr, port)) == 0


def test_the_probe_tells_a_wildcard_bind_from_a_loopback_one() -> None:
    """127.0.0.2 reaches a server bound to 0.0.0.0 and not one bound to 127.0.0.1, so the test
    below fails for a dashboard that listens everywhere, even on a loopback-only machine."""
    for host, reachable in (("0.0.0.0", True), ("127.0.0.1", False)):
        with socket.socket() as server:
            server.bind((host, 0))
            server.listen()
            assert _reachable(OTHER_LOOPBACK, server.getsockname()[1]) is reachable, host


def test_job_server_binds_loopback_only(ray_head) -> None:
    url, _, _ = ray_head
    port = int(url.rsplit(":", 1)[1])
    assert _reachable("127.0.0.1", port)  # the server is up, so a refusal below means something
    addrs = (_own_ipv4_addresses() | {OTHER_LOOPBACK}) - {"127.0.0.1"}
    reachable = [a for a in sorted(addrs) if _reachable(a, port)]
    assert not reachable, f"dashboard reachable on {reachable}"
