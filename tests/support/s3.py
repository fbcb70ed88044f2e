"""A local S3 (moto's server mode) for tests that run s3:// paths without a cloud account.

``moto_s3_server()`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free
port, puts dummy credentials in ``os.environ`` while it runs (boto3 and s3fs refuse to
sign requests without some), and restores the environment and stops the server on exit.
Clients reach it through ``endpoint_url`` (``S3Config(endpoint_url=...)`` for Storage).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "voxray-test-key",
    "AWS_SECRET_ACCESS_KEY": "voxray-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: variables that would point clients elsewhere or add a token moto cannot verify.
_CLEARED = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@contextmanager
def moto_s3_server(port: int = 0, credentials: dict[str, str] | None = None) -> Iterator[str]:
    """Run a moto S3 server for the ``with`` block; yields its endpoint URL
    ``http://127.0.0.1:PORT``.

    ``port`` 0 picks a free one (give the old port to bring a stopped server back at the same
    address); ``credentials`` replace the dummy AWS variables (e.g. a planted secret).
    """
    from moto.server import ThreadedMotoServer

    env = {**DUMMY_ENV, **(credentials or {})}
    saved = {k: os.environ.get(k) for k in (*env, *_CLEARED)}
    os.environ.update(env)
    for key in _CLEARED:
        os.environ.pop(key, None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )


def create_bucket(name: str, endpoint_url: str) -> None:
    """Create bucket ``name`` on the server at ``endpoint_url``."""
    _client(endpoint_url).create_bucket(Bucket=name)


def upload_tree(local_dir: str | os.PathLike[str], s3_uri: str, endpoint_url: str) -> int:
    """Copy every file under ``local_dir`` to ``s3://bucket/prefix/<relative path>``; returns the
    count."""
    if not s3_uri.startswith("s3://"):
        raise ValueError(f"upload_tree: {s3_uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = s3_uri[len("s3://") :].partition("/")
    client = _client(endpoint_url)
    root = Path(local_dir)
    count = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = "/".join(
            part for part in (prefix.strip("/"), path.relative_to(root).as_posix()) if part
        )
        client.upload_file(str(path), bucket, key)
        count += 1
    return count


def download_tree(s3_uri: str, local_dir: str | os.PathLike[str], endpoint_url: str) -> int:
    """Copy every object under ``s3://bucket/prefix/`` to ``local_dir/<relative key>`` (the
    reverse of :func:`upload_tree`); returns the count."""
    bucket, _, prefix = s3_uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/") + "/"
    client = _client(endpoint_url)
    root = Path(local_dir)
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            dest = root / obj["Key"][len(prefix) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(dest))
            count += 1
    return count
