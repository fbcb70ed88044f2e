"""One root (a local folder or ``s3://bucket/prefix``) and the filesystem that reaches it.

Local and S3 roots behave the same to the stages: relative paths, atomic writes (a
temporary name then ``os.replace`` locally; a single PUT on S3, which is atomic per
object), and Parquet datasets read as Hive-partitioned folders. Credentials never enter
this object: s3fs takes them from the environment of whichever process uses it, so a
Storage can be pickled to Ray workers and written into logs without leaking a secret.
"""

from __future__ import annotations

import io
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from voxray.config import S3Config

if TYPE_CHECKING:  # pyarrow.dataset imports pandas: seconds a command that only writes skips
    import pyarrow.dataset as pads


class StorageError(OSError):
    """A path that cannot be read or written; the message names it (never a credential)."""


@dataclass(frozen=True)
class Storage:
    """A root URI and the fsspec filesystem for it."""

    root: str
    s3: S3Config = S3Config()

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return filesystem(self.root, self.s3)

    def path(self, *parts: str) -> str:
        """The filesystem path (no scheme) of ``parts`` under the root."""
        base = self.root[len("s3://") :] if self.is_s3 else os.path.abspath(self.root)
        return posixpath.join(base, *[p.strip("/") for p in parts if p])

    def uri(self, *parts: str) -> str:
        return ("s3://" if self.is_s3 else "") + self.path(*parts)

    def child(self, *parts: str) -> "Storage":
        return Storage(self.uri(*parts), self.s3)

    def relative(self, full_path: str) -> str:
        base = self.path()
        full = full_path[len("s3://") :] if full_path.startswith("s3://") else full_path
        if not (full == base or full.startswith(base.rstrip("/") + "/")):
            raise StorageError(f"{full_path} is outside {self.root}")
        return full[len(base) :].lstrip("/")

    # ------------------------------------------------------------------ plain files

    def exists(self, *parts: str) -> bool:
        try:
            return bool(self.fs.exists(self.path(*parts)))
        except Exception as exc:  # re-raised with the path named
            raise StorageError(
                f"cannot reach {self.uri(*parts)}: {type(exc).__name__}: {exc}"
            ) from exc

    def open(self, rel: str, mode: str = "rb") -> Any:
        try:
            return self.fs.open(self.path(rel), mode)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot open {self.uri(rel)}: {type(exc).__name__}: {exc}") from exc

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel, "rb") as f:
            return f.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def makedirs(self, rel: str = "") -> None:
        if not self.is_s3:
            os.makedirs(self.path(rel), exist_ok=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write atomically: readers see the old file, or the whole new one, never a part."""
        target = self.path(rel)
        try:
            if self.is_s3:
                with self.fs.open(target, "wb") as f:
                    f.write(data)
                return
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = os.path.join(
                os.path.dirname(target), f".tmp-{uuid.uuid4().hex}-{os.path.basename(target)}"
            )
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except Exception as exc:
            raise StorageError(
                f"cannot write {self.uri(rel)}: {type(exc).__name__}: {exc}"
            ) from exc

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def remove(self, rel: str, recursive: bool = False) -> None:
        if self.exists(rel):
            self.fs.rm(self.path(rel), recursive=recursive)

    def find(self, rel: str = "", suffixes: tuple[str, ...] = ()) -> list[str]:
        """Paths (relative to the root) of all files below ``rel``, sorted; hidden ones skipped."""
        base = self.path(rel)
        try:
            if not self.fs.exists(base):
                return []
            found = self.fs.find(base)
        except Exception as exc:
            raise StorageError(f"cannot list {self.uri(rel)}: {type(exc).__name__}: {exc}") from exc
        out = []
        for p in found:
            r = self.relative(p)
            below = r[len(rel.strip("/")) :].strip("/") if rel else r
            if any(part.startswith((".", "_")) for part in below.split("/")):
                continue
            if suffixes and not r.lower().endswith(suffixes):
                continue
            out.append(r)
        return sorted(out)

    def sizes(self, rel: str = "") -> list[tuple[str, int]]:
        """(path, size in bytes) of every file ``find`` lists below ``rel``: enough to tell a
        corpus with a file added, removed or rewritten from the one a run saw."""
        files = self.find(rel)
        if not files:
            return []
        try:
            info = self.fs.find(self.path(rel), detail=True)
        except Exception as exc:
            raise StorageError(f"cannot list {self.uri(rel)}: {type(exc).__name__}: {exc}") from exc
        size = {self.relative(p): int(d.get("size") or 0) for p, d in info.items()}
        return [(f, size.get(f, 0)) for f in files]

    # ------------------------------------------------------------------ parquet

    def write_table(self, rel: str, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.write_bytes(rel, buf.getvalue())

    def parquet_files(self, rel: str) -> list[str]:
        """The committed Parquet files of a dataset folder (or the file itself)."""
        if rel.endswith(".parquet") and self.exists(rel) and not self.fs.isdir(self.path(rel)):
            return [rel]
        return self.find(rel, (".parquet",))

    def dataset(self, rel: str) -> pads.Dataset:
        files = [self.path(f) for f in self.parquet_files(rel)]
        if not files:
            raise StorageError(f"no Parquet data at {self.uri(rel)}")
        import pyarrow.dataset as pads

        return pads.dataset(
            files,
            format="parquet",
            filesystem=self.arrow_fs(),
            partitioning=pads.partitioning(flavor="hive"),
            partition_base_dir=self.path(rel),
        )

    def read_table(
        self, rel: str, columns: list[str] | None = None, filter: Any = None
    ) -> pa.Table:
        """A whole Parquet file or Hive-partitioned folder as one table."""
        return self.dataset(rel).to_table(columns=columns, filter=filter)

    def read_pandas(self, rel: str, columns: list[str] | None = None, filter: Any = None) -> Any:
        return self.read_table(rel, columns, filter).to_pandas()

    def iter_batches(
        self, rel: str, columns: list[str] | None = None, batch_size: int = 256
    ) -> Iterator[pa.RecordBatch]:
        yield from self.dataset(rel).to_batches(columns=columns, batch_size=batch_size)

    def arrow_fs(self) -> Any:
        from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

        if not self.is_s3:
            return LocalFileSystem()
        return PyFileSystem(FSSpecHandler(self.fs))


def filesystem(root: str, s3: S3Config = S3Config()) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for a root; S3 options from config, credentials from the
    environment."""
    if root.startswith("s3://"):
        # No listing cache: Ray workers in other processes add files to the prefixes this
        # process lists, and s3fs answers "not found" from a cached listing for a file it
        # was just told about (a run on s3:// failed reading its own attributions that way).
        kwargs: dict[str, Any] = {
            "anon": s3.anon,
            "skip_instance_cache": False,
            "use_listings_cache": False,
        }
        endpoint = (
            s3.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        client: dict[str, Any] = {}
        if endpoint:
            client["endpoint_url"] = endpoint
        if s3.region:
            client["region_name"] = s3.region
        if client:
            kwargs["client_kwargs"] = client
        # a store that went away should fail the stage quickly with a clear error, not hang
        kwargs["config_kwargs"] = {
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"max_attempts": 2},
        }
        return fsspec.filesystem("s3", **kwargs)
    if "://" in root and not root.startswith("file://"):
        raise StorageError(
            f"unsupported storage URI {root!r}: use a local path or s3://bucket/prefix"
        )
    return fsspec.filesystem("file")
