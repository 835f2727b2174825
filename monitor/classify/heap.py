"""Keep the freed activations of each batch from staying with the process (glibc malloc).

glibc serves a large allocation with its own ``mmap`` (given back on ``free``) only while it
is above the mmap threshold, and that threshold rises to the size of every large block
freed, up to 32 MiB. After the first batch the model's activations (a few MiB each) were
therefore carved from the heap arenas of the threads that ran it, and freed memory there
stayed resident until the next ``malloc_trim``: about 200 MiB on top of the models at the
peak of each batch (monitor/classify/README.md, "Memory"). ``return_large_blocks`` fixes the
threshold, so blocks of 256 KiB and more always come from ``mmap`` and go back on ``free``.
Elsewhere than glibc both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from pathlib import Path
from typing import Any

MMAP_THRESHOLD = 256 * 1024  # bytes: blocks this size and larger are mmapped
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers (malloc.h)

_LOCK = threading.Lock()
_LIBC: Any = None


def _libc() -> Any:
    """glibc (with ``mallopt`` and ``malloc_trim``), or False elsewhere."""
    global _LIBC
    with _LOCK:
        if _LIBC is None:
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _LIBC = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else False
            except OSError:
                _LIBC = False
        return _LIBC


def return_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve every block of ``threshold`` bytes or more from ``mmap`` from now on, for good.

    Process-wide and lasting (it also stops glibc raising the threshold). True if set.
    """
    libc = _libc()
    return bool(libc) and libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold)) == 1


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


_MADV_DONTNEED = 4  # madvise advice (sys/mman.h, Linux)


def _file_mapping(start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies inside one file-backed private mapping of this process."""
    try:
        with Path("/proc/self/maps").open(encoding="utf-8") as maps:
            for line in maps:
                fields = line.split()
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= start and end <= high:
                    # address, perms, offset, device, inode, path (none for anonymous memory)
                    perms, inode, path = fields[1], fields[4], (fields[5:] or [""])[0]
                    return perms.endswith("p") and inode != "0" and path.startswith("/")
    except (OSError, ValueError, IndexError):
        return False
    return False


def drop_file_pages(tensor: Any) -> int:
    """Drop the resident pages of ``tensor`` if it is read from a memory-mapped file.

    A checkpoint read with ``torch.load(mmap=True)`` keeps its weights as pages of the file;
    a weight the model no longer uses (replaced by a copy) would stay resident as long as
    any other weight of the file lives. The pages are re-read from the file if the tensor is
    ever read again, so its values do not change. Only whole pages inside a private file
    mapping are dropped (never heap memory); returns the bytes dropped.
    """
    libc = _libc()
    page = 4096 if not libc else int(libc.getpagesize())
    start: int = tensor.data_ptr()
    end: int = start + tensor.numel() * tensor.element_size()
    first = -(-start // page) * page
    last = end // page * page
    if not libc or last <= first or not _file_mapping(start, end):
        return 0
    if libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED) != 0:
        return 0
    return last - first
