"""The console: logging set-up, the redaction that keeps credentials out of every message we
print, a stage's progress line, and the check that a console log is voxray's, not Ray's."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Callable, TextIO

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN")
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+:[^/@\s]+@")


def redact(text: str) -> str:
    """Replace secrets from the environment, and user:password@ in URIs, by '***'."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _URI_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def first_sentence(message: str, limit: int = 200) -> str:
    """The first sentence of a Ray message's first line, at most ``limit`` characters."""
    line = (message.strip().splitlines() or [""])[0]
    sentence = re.split(r"(?<=\.)\s", line, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("voxray")
    if any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[voxray] %(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


#: Seconds between two progress lines when the console is a file or a pipe (a terminal
#: redraws one line instead, at most every REDRAW_S). The gap grows with the stage's age, to
#: a tenth of the time it has run, and a line with no new rows waits STALLED_EVERY_S: a stage
#: of an hour then writes about 45 lines, not 360 (a demo's console stays readable).
PROGRESS_EVERY_S = 10.0
STALLED_EVERY_S = 60.0
REDRAW_S = 0.5
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """One stage's progress on the console: rows done / total, rows/s and ETA. On a terminal a
    bar redrawn in place on one line; in a file or a pipe a line every PROGRESS_EVERY_S
    seconds at first, then ever further apart (``due``), and always a last line at ``close``
    (so a log holds a few lines per stage, not one per update). ``update`` is thread-safe;
    ``clock`` and ``stream`` are for tests."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = REDRAW_S if self.tty else every_s
        self.started = clock()
        self.done = 0
        self._shown_at = self.started
        self._shown_done: int | None = None
        self._lock = threading.Lock()

    def line(self) -> str:
        """``label: done/total rows (pct) r rows/s ETA t`` (no total: rows and rate only)."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        if not self.total:
            return f"{self.label}: {self.done} rows, {rate:.3g} rows/s, {_duration(elapsed)}"
        frac = min(self.done / self.total, 1.0)
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = "done" if self.done >= self.total else (_duration(left) if left else "?")
        bar = ""
        if self.tty:
            filled = int(round(frac * BAR_WIDTH))
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
        return (
            f"{self.label}: {bar}{self.done}/{self.total} rows ({100 * frac:.0f}%), "
            f"{rate:.3g} rows/s, ETA {eta}"
        )

    def update(self, done: int) -> None:
        """Set the rows done so far; prints when the last line is old enough."""
        with self._lock:
            self.done = done if self.total is None else min(done, self.total)
            if self.clock() - self._shown_at >= self.due():
                self._show()

    def due(self) -> float:
        """Seconds the next line waits after the last: on a terminal REDRAW_S; in a file
        ``every_s``, or a tenth of the stage's age when longer, or STALLED_EVERY_S when no row
        finished since the last line (a heartbeat, so a slow stage still shows it lives)."""
        if self.tty:
            return self.every_s
        due = max(self.every_s, (self.clock() - self.started) / 10)
        return due if self.done != self._shown_done else max(due, STALLED_EVERY_S)

    def close(self) -> None:
        """The last line, unless it is already shown (a terminal's bar ends with a newline)."""
        with self._lock:
            if self._shown_done != self.done:
                self._show()
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()

    def _show(self) -> None:
        self._shown_at = self.clock()
        self._shown_done = self.done
        if self.tty:
            self.stream.write("\r\x1b[K[voxray] " + self.line())
        else:
            self.stream.write(f"[voxray] {time.strftime('%H:%M:%S')} {self.line()}\n")
        self.stream.flush()


#: A console a person reads: at most this many lines for a demo run.
CONSOLE_MAX_LINES = 300
#: A record of Ray's C++ logger, which the driver's core worker writes to descriptor 2 (see
#: native_stderr): ``[2026-12-06 17:23:24,294 E 32230 32516] core_worker.cc:2465: ...``
NATIVE_RECORD = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[DIWEF]) \d+ \d+\] [\w./-]+\.(cc|h):\d+: "
)
#: Lines that are Ray's, not voxray's: its Train controller's state polling, Ray Data's
#: progress bars, the workers' forwarded output (``(pid=..)``, ``(TrainController pid=..)``),
#: Ray's own Python log records (``2026-12-05 14:04:33,978 WARNING file.py:85 -- ...``) and
#: its C++ ones (NATIVE_RECORD).
RAY_NOISE = (
    NATIVE_RECORD,
    re.compile(r"Failed to query Ray Train Controller"),
    # Ray Tune's console reporter: its experiment box and result paths
    re.compile(r"Configuration for experiment|View detailed results here|visualize your results"),
    # a tqdm bar: "12.0 row [00:03, 3.91 row/s]", "2.00/2.00 [00:02<00:00, 1.26s/ file]"
    re.compile(r"\d(\.\d+)? (row|bundle)s? \[\d\d:\d\d|\d/\d+(\.\d+)? \[\d\d:\d\d<"),
    re.compile(r"^\((\w+ )?pid=\d+[^)]*\)|^\((raylet|autoscaler|gcs_server)[^)]*\)"),
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\s+(INFO|WARNING|DEBUG) \S+:\d+ --"),
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def ray_noise(text: str) -> list[str]:
    """The lines of a console log that are Ray's chatter rather than voxray's."""
    return [
        line for line in text.splitlines() if any(p.search(_ANSI.sub("", line)) for p in RAY_NOISE)
    ]


def console_problems(text: str, max_lines: int = CONSOLE_MAX_LINES) -> list[str]:
    """What keeps a console log from being one a person can read: too many lines, or any of
    Ray's noise (the first few quoted). Empty when the console is fine."""
    problems = []
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    if lines > max_lines:
        problems.append(f"{lines} lines (at most {max_lines})")
    noise = ray_noise(text)
    if noise:
        quoted = "; ".join(line.strip()[:120] for line in noise[:3])
        problems.append(f"{len(noise)} lines of Ray's own output, e.g. {quoted}")
    return problems
