"""Logging set-up and the redaction that keeps credentials out of every message we print."""

from __future__ import annotations

import logging
import os
import re

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
