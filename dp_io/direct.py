"""Writing a file past the page cache (``O_DIRECT``), for outputs that nothing reads soon.

A run keeps every node's output, but inside a flow's step the next node takes its input from
memory: the file is there for later runs, the UI and ``dp runs read``. Written through the page
cache, every byte of it first takes a fresh page of memory, and a run that writes gigabytes
fills memory with dirty pages nobody reads now. On the VMs measured here (freed memory goes back
to the host) a fresh page costs more than the copy itself: 1 GiB written into new page-cache
pages took 2.7 s of kernel time, with ``O_DIRECT`` 0.7 s wall and 0.13 s of CPU. Databases write
their own write-once files this way for the same reasons.

``O_DIRECT`` wants the memory, the file offset and the length of every write aligned to the
device's block. :class:`DirectFile` copies what it is given into one page-aligned buffer and
writes whole buffers; the last one is padded to the block and the file is then truncated to its
real length. Where the platform or the filesystem refuses ``O_DIRECT``, :func:`open_direct`
returns ``None`` and the caller writes through the page cache as usual.
"""

from __future__ import annotations

import errno
import mmap
import os
from types import TracebackType

import numpy as np

BUFFER_BYTES = 8 << 20  # one write system call per 8 MiB: large enough to keep a disk busy
ALIGNMENT = 4096  # covers 512-byte and 4 KiB logical blocks


class DirectFile:
    """A write-only binary file opened with ``O_DIRECT`` (pyarrow accepts it as a sink)."""

    def __init__(self, fd: int, buffer_bytes: int = BUFFER_BYTES):
        if buffer_bytes % ALIGNMENT:
            raise ValueError(f"buffer_bytes must be a multiple of {ALIGNMENT}")
        self._fd = fd
        self._buffer = mmap.mmap(-1, buffer_bytes)  # anonymous mappings are page-aligned
        # Copies go through numpy, which releases the GIL for them (a memoryview copy holds it,
        # and the step's thread would wait on the writer's copies).
        self._array = np.frombuffer(self._buffer, dtype=np.uint8)
        self._filled = 0
        self._position = 0
        self.closed = False

    # -- the file protocol pyarrow and pandas use --------------------------------------------

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        source = np.frombuffer(data, dtype=np.uint8)
        size, offset, capacity = len(source), 0, len(self._array)
        while offset < size:
            take = min(size - offset, capacity - self._filled)
            self._array[self._filled : self._filled + take] = source[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == capacity:
                self._write_out(capacity)
                self._filled = 0
        self._position += size
        return size

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to do: whole buffers are written as they fill, the rest by ``close``."""

    def close(self) -> None:
        """Write the last, padded buffer and cut the file to the bytes actually written."""
        if self.closed:
            return
        try:
            if self._filled:
                padded = -(-self._filled // ALIGNMENT) * ALIGNMENT
                self._array[self._filled : padded] = 0
                self._write_out(padded)
            os.ftruncate(self._fd, self._position)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close without writing what is buffered (the caller removes the partial file)."""
        if self.closed:
            return
        self.closed = True
        os.close(self._fd)
        del self._array  # the mmap closes only when nothing exports its memory
        self._buffer.close()

    def __del__(self) -> None:  # a file dropped unclosed must not keep its descriptor
        if not getattr(self, "closed", True):
            self.abort()

    def __enter__(self) -> DirectFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _write_out(self, length: int) -> None:
        written = 0
        while written < length:
            count = os.write(self._fd, self._array[written:length].data)
            if count <= 0:  # a full disk may answer with a short write first
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += count


def open_direct(path: str, buffer_bytes: int = BUFFER_BYTES) -> DirectFile | None:
    """``path`` created (or truncated) for direct writes, or ``None`` where that is refused."""
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:  # not Linux
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flag, 0o666)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # the filesystem does not do direct IO
            return None
        raise
    return DirectFile(fd, buffer_bytes)
