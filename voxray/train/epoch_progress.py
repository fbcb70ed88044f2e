"""A training run's progress on the driver's console, one line per finished epoch.

Ray Train's workers report their epochs to its controller actor, not to the driver, and their
own output goes to Ray's log files: a user who starts ``voxray train`` would see nothing for the
minutes a model trains. Rank 0 names each epoch's checkpoint ``epoch_NNNN`` (voxray.train.loop),
so the driver watches the run's storage folder for the newest one and logs it with the elapsed
time and an ETA. Reading a folder listing every few seconds costs nothing next to an epoch.
"""

from __future__ import annotations

import re
import threading
import time
from types import TracebackType

from voxray.io.storage import Storage
from voxray.log import get_logger

log = get_logger(__name__)
EPOCH_DIR = re.compile(r"epoch_(\d+)$")
#: seconds between two looks at the run's folder.
POLL_S = 5.0


def newest_epoch(names: list[str]) -> int:
    """The highest epoch among checkpoint folder names (``epoch_0003`` -> 3), 0 if none."""
    found = [int(m.group(1)) for n in names if (m := EPOCH_DIR.search(n.rstrip("/")))]
    return max(found, default=0)


def progress_line(name: str, epoch: int, epochs: int, elapsed_s: float, first: int) -> str:
    """``train NAME: epoch 3/12 done, 41 s, ETA 2 min 44 s``; the ETA is from the epochs this
    run has trained (not those it resumed past, ``first`` is the first one it trains)."""
    done_here = epoch - first + 1
    per_epoch = elapsed_s / max(done_here, 1)
    eta = per_epoch * (epochs - epoch)
    return (
        f"train {name}: epoch {epoch}/{epochs} done, {_duration(elapsed_s)}, ETA {_duration(eta)}"
    )


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s} s" if minutes else f"{s} s"


class EpochProgress:
    """Context manager: while a ``TorchTrainer.fit`` runs, log each epoch it finishes."""

    def __init__(self, run_folder: Storage, name: str, epochs: int) -> None:
        self.folder, self.name, self.epochs = run_folder, name, epochs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"epochs-{name}", daemon=True)

    def _epoch_now(self) -> int:
        fs, path = self.folder.fs, self.folder.path()
        try:
            fs.invalidate_cache(path)  # s3fs caches listings
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
        except (FileNotFoundError, OSError):  # the run has not written its folder yet
            return 0
        return newest_epoch(names)

    def _watch(self) -> None:
        start, shown = time.perf_counter(), self._epoch_now()
        first = shown + 1  # a resumed run starts after its last checkpoint
        while not self._stop.wait(POLL_S):
            epoch = self._epoch_now()
            if epoch > shown:
                elapsed = time.perf_counter() - start
                log.info(progress_line(self.name, epoch, self.epochs, elapsed, first))
                shown = epoch

    def __enter__(self) -> "EpochProgress":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=POLL_S * 2)
