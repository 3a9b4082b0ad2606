"""The hidden names files are written under before they are renamed into place.

``.{name}.{token}.tmp``, where the token names the writer (``pid-random-host``): a later write or
a cleanup tells from it whether the writer is gone (``dp_io.store``). Run outputs (``dp_io``) and
the files nodes write under the data root (``FilesResource``, which must leave room for the
longer name) share this convention, so it lives below both.
"""

from __future__ import annotations

import os
import re
import socket
import uuid


def host_label() -> str:
    """This machine's name as it appears in a token: letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def writer_token() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}-{host_label()}"


def parse_token(token: str) -> tuple[int, str] | None:
    """``pid-random-host`` -> (pid, host); None for anything else."""
    pid, _, rest = token.partition("-")
    _, _, host = rest.partition("-")
    return (int(pid), host) if pid.isdigit() and host else None


def temp_name(name: str, token: str) -> str:
    return f".{name}.{token}.tmp"


def parse_temp_name(name: str) -> tuple[str, str] | None:
    """``.{target}.{token}.tmp`` -> (target, token); None for anything else."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    target, _, token = name[1:-4].rpartition(".")
    return (target, token) if target and parse_token(token) else None
