"""What a process holds in host memory, measured from inside (tests and benchmarks of bounded memory).

``held_bytes()`` = Python and numpy allocations traced by :mod:`tracemalloc` (when it is tracing)
+ the storages of every CPU tensor reachable from Python objects, counted once each, but for
storages mapped from files (memory-mapped temporary files: page cache the OS can drop). Torch's
CPU allocator keeps no statistics, and the process high-water mark (RSS) mixes in the allocator's
caches, so this is the figure that shows whether a job's state grows with its length.
"""

from __future__ import annotations

import bisect
import gc
import tracemalloc

import torch


def file_backed_ranges() -> list[tuple[int, int]]:
    """Address ranges mapped from files (Linux ``/proc/self/maps``; empty elsewhere)."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].startswith("/"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    ranges.append((start, end))
    except OSError:
        pass
    return ranges


def tensor_bytes() -> int:
    """Bytes of the distinct CPU tensor storages reachable from Python, file-backed ones excluded."""
    mapped = sorted(file_backed_ranges())
    starts = [a for a, _ in mapped]

    def in_file(ptr: int) -> bool:
        i = bisect.bisect_right(starts, ptr) - 1
        return i >= 0 and ptr < mapped[i][1]

    storages: dict[int, int] = {}
    for obj in gc.get_objects():
        # plain tensors and parameters only: subclasses such as torch.compile's fake and functional
        # tensors own no memory (and refuse data_ptr())
        if type(obj) not in (torch.Tensor, torch.nn.Parameter) or obj.device.type != "cpu":
            continue
        try:
            storage = obj.untyped_storage()
            ptr = storage.data_ptr()
        except (RuntimeError, NotImplementedError):  # fake / functional tensors (torch.compile traces) own no memory
            continue
        if ptr and not in_file(ptr):
            storages[ptr] = storage.nbytes()
    return sum(storages.values())


def held_bytes() -> int:
    """tracemalloc's current traced bytes (0 when not tracing) + :func:`tensor_bytes`."""
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return traced + tensor_bytes()
