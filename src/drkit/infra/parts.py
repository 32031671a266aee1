"""Cut a byte stream into fixed-size parts handled by a pool of worker threads.

Memory is bounded: `parallel` parts in the workers plus the one being read. The sink (compress, encrypt,
hash, store) runs in the workers; zstd, hashlib and file writes release the GIL, so the
parts really are processed in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
READ_SIZE = 1 << 20


def split_into_parts(
    read: Callable[[int], bytes],
    sink: Callable[[int, bytes], T],
    *,
    part_size: int,
    parallel: int,
    observe: Callable[[bytes], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[T], int]:
    """Read until EOF; return the sink's results in part order and the bytes read."""
    futures: list[Future[T]] = []
    slots = threading.Semaphore(parallel)
    total = 0
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="part") as pool:

        def submit(data: bytes) -> None:
            slots.acquire()
            fut = pool.submit(sink, len(futures), data)
            fut.add_done_callback(lambda _f: slots.release())
            futures.append(fut)

        def raise_failed() -> None:
            for fut in futures:
                if fut.done():
                    exc = fut.exception()
                    if exc is not None:
                        for other in futures:
                            other.cancel()
                        raise exc

        # Chunks are joined once per part: one allocation, no copies of a growing buffer.
        pending: list[bytes] = []
        held = 0
        while True:
            chunk = read(min(READ_SIZE, part_size - held))
            if not chunk:
                break
            if observe:
                observe(chunk)
            pending.append(chunk)
            held += len(chunk)
            total += len(chunk)
            if held >= part_size:
                submit(b"".join(pending))
                pending, held = [], 0
            raise_failed()
            if progress:
                progress(total)
        if pending or not futures:
            submit(b"".join(pending))
        return [f.result() for f in futures], total
