"""The report opened in headless Chromium: the DOM loads, every image decodes (naturalWidth > 0),
no console error, no network request beyond the file itself; a screenshot is kept in
test-artifacts/ for a person to look at.

Chromium is driven three ways: ``--dump-dom`` (the DOM after load), ``--screenshot``, and the
DevTools protocol over a websocket (a minimal RFC 6455 client below: Python's websockets
package is not a dependency) to read image sizes, console messages and requests.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from voxray.config import VoxrayConfig, replace
from voxray.pipeline.context import RunContext
from voxray.pipeline.report_stage import INDEX, run_report
from voxray.testing.synthetic_report import write_synthetic_outputs

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
TIMEOUT_S = 25

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """(file:// URL of a report over the synthetic outputs, number of <img> in it)."""
    root = tmp_path_factory.mktemp("run")
    cfg = replace(VoxrayConfig(), out=str(root), profile="browser-test")
    ctx = RunContext(cfg)
    write_synthetic_outputs(ctx.out, cfg)
    result = run_report(ctx)
    return (root / INDEX).as_uri(), int(result.info["images"])


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]


def test_dom_loads_without_console_errors(report_url: tuple[str, int], tmp_path: Path) -> None:
    url, images = report_url
    proc = _chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", url], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<h1>voxray report</h1>" in dom
    assert dom.count("<img ") == images > 0
    assert len(re.findall(r"<section id=", dom)) >= 10
    assert _console_errors(proc.stderr) == []


def test_screenshot_saved_as_artifact(report_url: tuple[str, int], tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    proc = _chromium([f"--screenshot={shot}", "--window-size=1280,4000", report_url[0]], tmp_path)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    with PILImage.open(shot) as img:
        assert img.size == (1280, 4000)
        # a rendered page, not a blank one: the light page background and dark text both occur
        colours = img.convert("L").getextrema()
        assert colours[0] < 80 and colours[1] > 230


class DevTools:
    """A minimal DevTools-protocol client over one websocket (text frames, client-masked)."""

    def __init__(self, ws_url: str) -> None:
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", ws_url)
        assert m, ws_url
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=TIMEOUT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\nUpgrade: "
                f"websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: "
                f"13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools websocket closed")
            data += chunk
        return data

    def _message(self) -> dict[str, Any]:
        payload = b""
        while True:
            b0, b1 = self._recv_exact(2)
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._recv_exact(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(size)
            if b0 & 0x0F == 0x8:
                raise ConnectionError("DevTools websocket closed by Chromium")
            if b0 & 0x0F in (0x9, 0xA):  # ping / pong: nothing to do for a short session
                continue
            payload += data
            if b0 & 0x80:
                return json.loads(payload)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        body = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        n = len(body)
        header = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + struct.pack(">H", n)
        )
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == event for e in self.events):
            assert time.monotonic() < deadline, f"no {event} within {timeout_s} s"
            self.events.append(self._message())

    def close(self) -> None:
        self.sock.close()


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port Chromium chose for --remote-debugging-port=0 (it writes DevToolsActivePort)."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        assert proc.poll() is None, "Chromium exited before opening the DevTools port"
        time.sleep(0.1)
    raise AssertionError("Chromium did not open its DevTools port")


def test_images_decode_and_nothing_is_fetched(report_url: tuple[str, int], tmp_path: Path) -> None:
    url, images = report_url
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1280,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = _devtools_port(profile, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT_S) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        cdp = DevTools(page["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.send(f"{domain}.enable")
            cdp.send("Page.navigate", url=url)
            cdp.wait_for("Page.loadEventFired")
            result = cdp.send(
                "Runtime.evaluate",
                returnByValue=True,
                expression=(
                    "JSON.stringify(Array.from(document.images).map(i => [i.complete, "
                    "i.naturalWidth, i.naturalHeight]))"
                ),
            )
            sizes = json.loads(result["result"]["value"])
            events = list(cdp.events)
        finally:
            cdp.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(sizes) == images
    assert all(complete and w > 0 and h > 0 for complete, w, h in sizes), sizes
    errors = [
        e
        for e in events
        if e.get("method") in ("Runtime.exceptionThrown",)
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == []
    requested = [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requested and all(u == url or u.startswith("data:") for u in requested), requested
