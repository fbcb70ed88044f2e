"""Connecting to Ray: a cluster when an address is given (``ray job submit`` sets one), else
the embedded local Ray started by the command itself; and the per-stage actor resources."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass

import ray

from voxray.config import RayConfig, ResourceConfig
from voxray.faults import InjectedFault
from voxray.log import first_sentence, get_logger
from voxray.nodes import live_nodes, resource_largest, resource_total

log = get_logger(__name__)


def ensure_ray(cfg: RayConfig) -> None:
    """Start or join Ray once per process (the dashboard binds to 127.0.0.1 unless
    configured), and set Ray Data up for voxray's stages even when Ray was started by someone
    else (a test, a notebook). Waits for a start begun by ``start_ray_early``, and raises its
    error."""
    global _early
    if _early is not None:
        early, _early = _early, None
        early.ready.wait()
        if early.error is not None:
            raise early.error
        if threading.current_thread() is threading.main_thread():
            # what ray.init sets only when called on the main thread
            signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(signum))
    _connect(cfg)


class _EarlyStart(threading.Thread):
    """``_connect`` on a thread of its own; its error is kept for the command's thread. The
    thread then lives as long as the process: Ray starts its processes with a parent-death
    signal, which Linux sends when the *thread* that started them ends (the GCS and raylet
    were killed a moment after). A daemon, so that it never holds the process."""

    def __init__(self, cfg: RayConfig) -> None:
        super().__init__(name="voxray-ray-start", daemon=True)
        self.cfg = cfg
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            _connect(self.cfg)
        except BaseException as exc:  # handed to ensure_ray, which raises it
            self.error = exc
        self.ready.set()
        threading.Event().wait()  # keep Ray's processes' parent alive (see above)


_early: _EarlyStart | None = None


def start_ray_early(cfg: RayConfig) -> None:
    """Begin starting (or joining) Ray now, on a thread, while the command goes on with its
    own start (its imports, the model's check: about 2 s that Ray's start of 3-6 s then
    covers); ``ensure_ray`` waits for it."""
    global _early
    if _early is None and not ray.is_initialized():
        _early = _EarlyStart(cfg)
        _early.start()


def local_ray_started_here() -> bool:
    """Whether this process runs the embedded local Ray (``runs_local_ray``) or is starting
    one (an early start still under way when the command failed first)."""
    return (_early is not None and not _early.ready.is_set()) or runs_local_ray()


def _connect(cfg: RayConfig) -> None:
    if not ray.is_initialized():
        _start_or_join(cfg)
    configure_ray_data(cfg.progress_bars, cfg.no_progress_timeout_s)
    folder = route_ray_logs()  # after Ray Data's import, which sets its loggers up
    route_ray_errors()
    if folder:
        log.info("Ray's own logs (its workers, Ray Data, Ray Train and Tune): %s", folder)


#: Set to 1 to see the Ray workers' output on the console again (Ray's own switch).
LOG_TO_DRIVER_ENV = "RAY_LOG_TO_DRIVER"


def _start_or_join(cfg: RayConfig) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    # The workers' stdout/stderr stay in their files under Ray's log folder instead of being
    # forwarded to this console: Ray Train v2's placement-group cleaner alone logs "Failed to
    # query Ray Train Controller actor state" every second while it runs without the
    # dashboard's state API (589 lines of a demo). Stage failures still reach the driver as
    # exceptions, and voxray's warnings are the driver's own.
    quiet = {
        "logging_level": "ERROR",  # Ray's start-up notices go to the file (route_ray_logs)
        "log_to_driver": os.environ.get(LOG_TO_DRIVER_ENV, "0") == "1",
    }
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, **quiet)
    else:
        kwargs: dict[str, object] = {
            "include_dashboard": cfg.include_dashboard,
            "dashboard_host": cfg.dashboard_host,
            **quiet,
        }
        if cfg.num_cpus:
            kwargs["num_cpus"] = cfg.num_cpus
        if cfg.object_store_mb:
            kwargs["object_store_memory"] = cfg.object_store_mb * 1024 * 1024
        log.info("starting a local Ray (no RAY_ADDRESS given)")
        # "local": a new instance. Without it ray.init joins any Ray already running on this
        # machine (another user's, or the last `ray start`), with this run's settings refused.
        for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
            try:
                ray.init(address="local", **kwargs)
                return
            except Exception as exc:  # Ray raises a bare Exception for this
                if STARTUP_TIMEOUT not in str(exc) or attempt == LOCAL_START_ATTEMPTS:
                    raise
                log.warning("local Ray did not start in Ray's 30 s (busy machine): trying again")
                ray.shutdown()


#: Ray waits a fixed 30 s for a new node's raylet to register (ray/_private/node.py); on a busy
#: machine (seen at load 15 on 2 cores) that start-up fails although nothing is wrong, and the
#: next one succeeds. Only that failure is retried, only for the local Ray this command starts.
STARTUP_TIMEOUT = "timed out during startup"
LOCAL_START_ATTEMPTS = 3


def runs_local_ray() -> bool:
    """Whether this process started the embedded local Ray, whose processes are its own: the
    command can stop them at once (``stop_local_ray_now``) instead of waiting on
    ``ray.shutdown``'s graceful stop of each (about a second per process)."""
    from ray._private.worker import _global_node

    return ray.is_initialized() and _global_node is not None and _global_node.head


def stop_local_ray_now() -> int:
    """Kill every process this one started, and theirs: the local Ray's GCS and raylet, its
    agents and workers. Left to notice their raylet gone, the dashboard and runtime-env agents
    ran on for about 90 s after each command, 220 MB and a share of the CPU that slowed the
    next command's start (ray.init 6.7 s instead of 2.5 s back to back). Call it at the
    command's end, when what they did is committed (or, after a failure, left for a rerun to
    resume). Returns how many were killed (none where /proc is absent)."""
    killed = 0
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


@dataclass(frozen=True)
class ProcStat:
    """What /proc/<pid>/stat says of a process: its name, state ("Z": a zombie waiting to be
    reaped) and parent."""

    name: str
    state: str
    parent: int


def proc_stat(pid: int) -> ProcStat:
    """/proc/<pid>/stat, parsed (its name may hold spaces and parentheses: the fields after
    the last ")" are the fixed ones). Raises FileNotFoundError for a process gone."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    head, tail = text.rsplit(")", 1)
    fields = tail.split()
    return ProcStat(head.split("(", 1)[1], fields[0], int(fields[1]))


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` in the process tree, from /proc (empty without it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            parent = proc_stat(int(entry)).parent
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


#: The file, in Ray's log folder, that takes the Ray records this process logs itself.
DRIVER_LOG = "voxray-driver-ray.log"


def route_ray_logs() -> str | None:
    """Send the Ray records this process logs (ray, Ray Data, Ray Train, Ray Tune) to
    DRIVER_LOG in Ray's log folder and keep only their errors on the console. Returns that
    folder, where the workers' own logs and Ray Data's ray-data.log are too, the first time
    (None once routed)."""
    from ray._private.worker import _global_node

    ray_logger = logging.getLogger("ray")
    if any(isinstance(h, _DriverLogHandler) for h in ray_logger.handlers):
        return None
    folder = _global_node.get_logs_dir_path() if _global_node else os.getcwd()
    to_file = _DriverLogHandler(os.path.join(folder, DRIVER_LOG))
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s:%(lineno)d -- %(message)s")
    )
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(logging.ERROR)
        if name == "ray" or not logger.propagate:
            logger.addHandler(to_file)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    return folder


def route_ray_errors() -> None:
    """Show the errors Ray's cluster publishes to this driver (a worker that died, a node low
    on memory) as voxray warnings of one sentence each, whole in DRIVER_LOG. Ray's driver prints
    them raw, ``(raylet)``-prefixed, whatever ``log_to_driver`` says (ray/_private/worker.py:
    ``listen_error_messages`` calls ``print_to_stdstream``, looked up at each message, so
    replacing it serves the listener Ray already started). Once per process."""
    import ray._private.worker as ray_worker

    ray_print = ray_worker.print_to_stdstream
    if getattr(ray_print, ROUTED, False):
        return

    def print_to_stdstream(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            ray_print(data, ignore_prefix)
            return
        for message in data.get("lines", []):
            logging.getLogger("ray").info("error published by the cluster: %s", message)
            log.warning("Ray: %s", first_sentence(message))

    setattr(print_to_stdstream, ROUTED, True)
    ray_worker.print_to_stdstream = print_to_stdstream


#: marks Ray's print function once route_ray_errors has replaced it.
ROUTED = "voxray_routed"


class _DriverLogHandler(logging.FileHandler):
    """DRIVER_LOG's handler (a type of its own, so routing is done once per process)."""


def configure_ray_data(progress_bars: bool, no_progress_timeout_s: float) -> None:
    """This process's Ray Data settings for voxray's stages (idempotent)."""
    import warnings

    # Ray 2.60 deprecates ray_remote_args but has no named parameter for an actor pool's
    # max_restarts/max_task_retries, which voxray bounds (actor_retries): the warning would
    # print once per stage with nothing a user could change.
    warnings.filterwarnings(
        "ignore", message="`ray_remote_args` is deprecated", module="voxray.pipeline"
    )
    # a pool of N actors given fewer blocks (a small corpus) runs fine on fewer
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")

    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress_bars
    ctx.print_on_execution_start = False
    # Ray Data's error budget drops the rows of failed blocks and carries on. It fits none of
    # our stages: each must account for every row (StageResult.check), and a failed block is
    # better failed fast with its error, since the rerun recomputes only uncommitted rows.
    # Per-utterance failures are quarantined by the stages themselves (pipeline/failures.py).
    ctx.max_errored_blocks = 0
    # Ray Data retries actor tasks that failed with an injected fault (voxray.faults), and
    # only those: a real error, such as an unreachable store, must fail the stage, not loop.
    ctx.actor_task_retry_on_errors = [InjectedFault]
    # Parquet through Ray Data's first reader, not DataSourceV2: V2 lists files in a task
    # holding one CPU that waits on a pool of footer-reading actors, each needing one more
    # CPU to be placed. Beside an actor pool that holds the rest of a small machine's CPUs
    # the footer actors never start and the stage hangs (seen on 2 CPUs: an attribute stage
    # stalled for 11 minutes, its ListFiles task waiting). V1 samples a few footers on the
    # driver's call and reads with the task CPUs we give (DATA_TASK_CPUS); every read of
    # voxray's is built on the driver, so the driver's context is the one that counts.
    ctx.use_datasource_v2 = False
    # an attribute batch of perturbation methods can legitimately move no block for longer
    # than Ray's 30 min (seen: CAM++ on a loaded 2-core machine); see RayConfig
    ctx.execution_no_progress_timeout_s = no_progress_timeout_s


def cluster_gpus() -> float:
    """GPUs of the nodes that answer now (see cluster_cpus)."""
    return resource_total(live_nodes(), "GPU")


def cluster_cpus() -> float:
    """CPUs of the nodes that answer now (voxray.nodes): ray.cluster_resources() still counts
    a node lost without drain for a while, and a pool sized for its CPUs waits for room that
    is gone."""
    return resource_total(live_nodes(), "CPU", default=1.0)


#: Share of the cluster's object store a training source may take when it is cached for its
#: epochs: the crops of each epoch, Ray Data's streaming blocks and other stages' objects need
#: the rest (Ray spills beyond it, slower than reading the Parquet again).
TRAIN_CACHE_FRACTION = 0.25


def cluster_object_store_bytes() -> float:
    return resource_total(live_nodes(), "object_store_memory")


def fits_in_object_store(nbytes: int) -> bool:
    """Whether ``nbytes`` fit in TRAIN_CACHE_FRACTION of the cluster's object store: small
    corpora are read once, VoxCeleb-size ones stream from Parquet every epoch."""
    return 0 < nbytes <= TRAIN_CACHE_FRACTION * cluster_object_store_bytes()


def largest_node_cpus() -> float:
    """CPUs of the biggest node that answers: one task can hold no more than a single node has
    (asking for the cluster's total on several nodes leaves the task pending for ever)."""
    return resource_largest(live_nodes(), "CPU", default=1.0)


#: CPUs one Ray Data read or filter task asks for: Parquet reads are mostly I/O, and a small
#: request lets them run beside an actor pool that holds nearly every CPU.
DATA_TASK_CPUS = 0.25
#: CPUs an actor pool leaves free for the tasks around it: one whole CPU, because the tasks
#: that write its output (``write_datasink``) and V1's footer sampling ask for one each.
#: Physical threads do not change: an actor granted 0.5 CPU still runs one thread.
FEED_RESERVE_CPUS = 1.0


#: How often a pool actor is restarted (its process or node died) and how often a task on it
#: is retried after such a death. Ray Data's default is unbounded (-1): a UDF that kills its
#: worker every time would loop forever. Four covers a node lost mid-stage (its actors move
#: to the surviving nodes) and a second loss before the stage ends.
ACTOR_RETRIES = 4


def actor_retries() -> dict[str, int]:
    """max_restarts/max_task_retries for a map_batches actor pool (see ACTOR_RETRIES)."""
    return {"max_restarts": ACTOR_RETRIES, "max_task_retries": ACTOR_RETRIES}


def actor_resources(rc: ResourceConfig) -> dict[str, float]:
    """num_cpus/num_gpus (and bounded retries) for map_batches; 'auto' GPUs mean one per actor
    iff the cluster has any.

    Each node keeps FEED_RESERVE_CPUS free of the pool (actor_cpus): a pool holding every CPU
    starves its own input (its read tasks are never scheduled) and waits forever."""
    gpus = rc.num_gpus
    if gpus == "auto":
        gpus = 1.0 if cluster_gpus() > 0 else 0.0
    cpus = actor_cpus(node_cpus(), float(rc.num_cpus), max(rc.concurrency, 1))
    return {"num_cpus": cpus, "num_gpus": float(gpus), **actor_retries()}


def node_cpus() -> list[float]:
    """CPUs of each node that answers now (see cluster_cpus)."""
    return [float(n["Resources"].get("CPU", 0.0)) for n in live_nodes()] or [1.0]


def actor_cpus(nodes: list[float], wanted: float, concurrency: int) -> float:
    """CPUs for each of ``concurrency`` actors, at most ``wanted``, such that all of them fit
    on ``nodes`` (CPUs per node) with FEED_RESERVE_CPUS left free on every node. Counted
    cluster-wide, the reserve let an actor ask for more than any one node has (three 2-CPU
    nodes, two actors: 2.5 CPUs each, never placed) and let a node fill up with actors,
    leaving its own read and write tasks no room."""
    rooms = [max(c - FEED_RESERVE_CPUS, 0.0) for c in nodes]
    if not any(rooms):  # one-CPU nodes only: the read tasks' share, as the actors' floor
        rooms = [DATA_TASK_CPUS]

    def fits(x: float) -> bool:
        return sum(int(r / x + 1e-9) for r in rooms) >= concurrency

    # the answer is ``wanted`` or a node's room split evenly among some of the actors
    candidates = [wanted, *(r / k for r in rooms if r > 0 for k in range(1, concurrency + 1))]
    return max(x for x in candidates if x <= wanted and fits(x))


#: the environment variable that sets every pool's ``threads`` left at 0 (automatic): for
#: machines shared by several runs, such as the test suite's two workers on two cores, where
#: each Ray sees every core and the automatic rule would oversubscribe them.
THREADS_ENV = "VOXRAY_ACTOR_THREADS"


def actor_threads(rc: ResourceConfig, nodes: list[float]) -> int:
    """Torch threads per actor of a pool: ``rc.threads``, else THREADS_ENV, else the cores of
    the smallest node (CPUs per node in ``nodes``) shared among the actors an even spread puts
    on it. On one 2-core node a single actor computes on both cores and two actors on one
    each (bench/README.md, issue 31: one actor on one thread ran at half the loop's rate)."""
    if rc.threads:
        return rc.threads
    if os.environ.get(THREADS_ENV):
        return max(1, int(os.environ[THREADS_ENV]))
    cores = [c for c in nodes if c >= 1] or [1.0]
    per_node = math.ceil(max(rc.concurrency, 1) / len(cores))
    return max(1, int(min(cores) // per_node))


def torch_device(num_gpus: float) -> str:
    """The device an actor should use, given the GPUs it was granted."""
    import torch

    return "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
