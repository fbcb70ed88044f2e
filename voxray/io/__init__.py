"""Storage (local or s3://), atomic Parquet writes, resume and locking."""

from voxray.io.storage import Storage, StorageError, filesystem

__all__ = ["Storage", "StorageError", "filesystem"]
