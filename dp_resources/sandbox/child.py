"""The sandbox child: runs exactly one snippet, writes one result frame, exits.

Started either as a process of its own (``sandbox/entry.py``: payload on stdin, result on the fd
named in the spec, diagnostics on stderr) or forked from the fork server; both call ``serve``.
Order matters and is the same in both: limits, read the payload, compile, import what is
allowed, lock the process down, and only then run user code.
"""

from __future__ import annotations

import builtins
import os
import pickle
import sys
import time
import traceback
from typing import Any

from dp_resources.sandbox import isolation, policy, protocol
from dp_resources.sandbox.preload import preload

_MESSAGE_LIMIT = 8_000


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _snippet_line(exc: BaseException, code: str) -> dict[str, Any]:
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == policy.SNIPPET_FILENAME]
    if not frames or not frames[-1].lineno:
        return {}
    line = frames[-1].lineno
    lines = code.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return {"line": line, "source": text[:200]}


def _error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"kind": kind, "message": message[:_MESSAGE_LIMIT], **extra},
    }


def _from_import_machinery(exc: BaseException) -> bool:
    return any(frame.filename.startswith("<frozen importlib") for frame in traceback.extract_tb(exc.__traceback__))


def _classify(exc: BaseException, code: str) -> dict[str, Any]:
    where = _snippet_line(exc, code)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (OSError, ImportError)) and _from_import_machinery(exc):
        return _error("unavailable", text, **where)
    if isinstance(exc, policy.OutputLimitExceeded):
        return _error("output", str(exc))
    if isinstance(exc, policy.PolicyViolation):
        return _error("policy", str(exc), **where)
    if isinstance(exc, RecursionError):
        return _error("recursion", text, **where)
    if isinstance(exc, MemoryError):
        return _error("memory", text, **where)
    if isinstance(exc, OSError):
        return _error("isolation", text, **where)
    if isinstance(exc, ImportError):
        return _error("unavailable", text, **where)
    return _error("code", text, exception=type(exc).__name__, **where)


def _open_namespace(variables: dict[str, Any]) -> dict[str, Any]:
    """The namespace without the policy: only for tests that show the process walls alone."""
    import numpy
    import pandas

    return {"__builtins__": builtins, "__name__": "snippet", "pd": pandas, "np": numpy, **variables}


def _execute(payload: dict[str, Any], session: policy.Session, code_obj: Any, with_policy: bool) -> Any:
    inputs = dict(payload["inputs"])
    mode = payload["mode"]
    variables = inputs if mode == "script" else {}
    namespace = session.namespace(variables) if with_policy else _open_namespace(variables)
    exec(code_obj, namespace)  # noqa: S102 - RestrictedPython-compiled code in a locked child
    if mode == "script":
        if "result" not in namespace:
            raise _UsageError("the script must assign its output to a variable named `result`")
        return namespace["result"]
    name = payload["function_name"]
    function = namespace.get(name)
    if not callable(function):
        raise _UsageError(f"the code must define a function `def {name}(...)`")
    return function(**inputs)


class _UsageError(Exception):
    pass


class _NoNewImports:
    """A meta-path finder that ends every import search once the child is locked down.

    Without it a lazy import of a missing optional dependency (pandas probes for ``zstandard``
    before writing a file) would fail with "too many open files" while scanning ``sys.path``;
    with it, the library sees the ordinary "not installed" and carries on.
    """

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        raise ModuleNotFoundError(
            f"No module named {name!r} (the sandbox loads no modules after it starts)",
            name=name,
        )


def run(payload: dict[str, Any], spec: dict[str, Any], fds: dict[str, int]) -> bytes:
    """Run one snippet and return the frame to write; ``fds["result"]`` follows the lockdown."""
    code = payload["code"]
    session = policy.Session(payload["allowed_modules"], spec["max_output_bytes"])
    try:
        preload(session.importable)
    except ImportError as exc:
        header = _error("setup", f"an allowed module cannot be imported in the sandbox: {exc}")
        return protocol.pack_frame(header, "", b"")
    enabled = frozenset(spec.get("layers", isolation.LAYERS))
    with_policy = "policy" in enabled
    if with_policy:
        code_obj, errors = policy.compile_snippet(code)
    else:
        code_obj, errors = compile(code, policy.SNIPPET_FILENAME, "exec"), []
    if errors:
        header = _error("policy", "; ".join(errors))
        return protocol.pack_frame(header, "", b"")
    session.index_internals()
    sys.meta_path.insert(0, _NoNewImports())
    fds["result"], layers = isolation.lockdown(fds["result"], spec.get("workdir"), enabled)
    if with_policy:
        layers.insert(0, "policy")
    started = time.perf_counter()
    body = b""
    try:
        value = _execute(payload, session, code_obj, with_policy)
        header = {"ok": True}
    except _UsageError as exc:
        header = _error("usage", str(exc))
    except BaseException as exc:  # noqa: BLE001 - everything the snippet raises is reported
        header = _classify(exc, code)
    violations = policy.recorded_violations()
    if violations:
        header = _error("policy", violations[0])
    elif session.output_exceeded:
        header = _error("output", f"printed output passed {spec['max_output_bytes']} bytes")
    if header["ok"]:
        try:
            fields, body = protocol.encode_value(value)
            header.update(fields)
        except protocol.ResultEncodingError as exc:
            header = _error("result", str(exc))
        except MemoryError as exc:
            header = _error("memory", f"MemoryError while encoding the result: {exc}")
        stdout_bytes = session.output_bytes
        if header["ok"] and stdout_bytes + len(body) > spec["max_output_bytes"]:
            header = _error(
                "output",
                f"printed output ({stdout_bytes} bytes) plus the result ({len(body)} bytes) "
                f"passed {spec['max_output_bytes']} bytes",
            )
            body = b""
    header["layers"] = layers
    header["run_s"] = time.perf_counter() - started
    stdout = session.stdout if not session.output_exceeded else ""
    return protocol.pack_frame(header, stdout, body if header["ok"] else b"")


def serve(spec: dict[str, Any], result_fd: int) -> None:
    """Child body after limits: read the payload on fd 0, run, write the frame, exit."""
    fds = {"result": result_fd}
    try:
        isolation.apply_limits(spec["cpu_seconds"], spec["memory_mb"], spec["wall_seconds"])
        payload = pickle.loads(_read_all(0))  # noqa: S301 - the payload comes from our own parent
        frame = run(payload, spec, fds)
        _write_all(fds["result"], frame)
    except MemoryError:
        _write_all(fds["result"], protocol.pack_frame(_error("memory", "MemoryError"), "", b""))
        os._exit(0)
    except BaseException:  # noqa: BLE001 - the child must always exit, never return
        traceback.print_exc()
        os._exit(1)
    os._exit(0)
