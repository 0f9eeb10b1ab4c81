"""CPU memory: keep freed activations for reuse instead of faulting their pages in again at every call.

A process-wide setting, so it is the caller's choice: the CLI, the Space and train/train.py make it on CPU; the
library (Enhancer, the pipeline, anything that travels with a checkpoint) never does.
"""

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.lru_cache(maxsize=None)
def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Make glibc's malloc keep freed memory for the next tensor instead of handing it back to the OS at every free.

    PyTorch has no caching allocator on CPU: by default glibc maps every block over 32 MiB (and, after a free, every
    block over a moving threshold) fresh from the kernel and unmaps it when freed, so each full-resolution activation
    costs a page fault per 4 KiB. With blocks up to `threshold_bytes` served from the heap (and the heap not trimmed
    below that), the pages are faulted once and reused (figures: `benchmarks/allocator.py`, BENCHMARKS.md). The cost:
    the process keeps its peak memory between calls. Process-wide, so it is the caller's choice, never the library's:
    the CLI, the Space and train/train.py call it on CPU. Idempotent; returns False (and changes nothing) where the C
    library is not glibc (macOS, Windows, musl) or MIRNET_KEEP_FREED_MEMORY=0.
    """
    if os.environ.get("MIRNET_KEEP_FREED_MEMORY") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, threshold_bytes))


__all__ = ["keep_freed_memory"]
