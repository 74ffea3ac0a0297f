"""Keeping large read buffers out of mmap.

Reading a socket with ``recv(256 KiB)`` allocates a 256 KiB bytes object per
read. That is above glibc's initial mmap threshold (128 KiB), so a fresh
process pays an mmap + munmap pair for every read (measured: three times the
CPU of a 64-byte echo) until some such block is freed: freeing an mmapped
block raises glibc's threshold to its size, for the whole process. Freeing
one up front does the same at once. (Reading 64 KiB instead avoids mmap too,
but costs 1.4-1.65x the CPU per MB streamed: four times the system calls.)
Elsewhere than glibc this is one harmless allocation.
"""

from __future__ import annotations

_raised_to = 0


def raise_mmap_threshold(read_size: int) -> None:
    """Make reads of up to ``read_size`` bytes come from the heap (once per process)."""
    global _raised_to
    if read_size > _raised_to:
        _raised_to = read_size
        bytes(read_size + 4096)
