"""Host work ahead of the device: batches prepared by a background thread, copied without blocking.

    with Prefetcher(chunks(order, 16), make, device=device) as batches:   # make: pad, pack, pin
        for host in batches:
            step(to_device(host, device))

Training (`train.loop`) and scoring (`scoring.core.prefetched`) both feed the GPU this way: while
the GPU runs one batch, the next is tokenised, padded or packed, and pinned on the host, and the
copy is queued asynchronously, so the GPU does not wait for Python.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch


def pinned(inputs):
    """A prepared batch (a dict of tensors, or anything with .pin_memory) in page-locked memory."""
    if isinstance(inputs, dict):
        return {k: v.pin_memory() for k, v in inputs.items()}
    return inputs.pin_memory()


def to_device(inputs, device: torch.device):
    """A prepared batch (a dict of tensors, or anything with .to) on `device`; from pinned memory
    the copy to a GPU is asynchronous (the caching host allocator keeps the pinned buffers alive
    until their copies are done), so it overlaps with the work already queued there."""
    non_blocking = device.type == "cuda"
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=non_blocking) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=non_blocking)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


class Prefetcher:
    """`make(item)` for each of `items`, made by a background thread up to `depth` ahead, so the
    next batch is padded (and pinned) while the current step runs.

        with Prefetcher(chunks(order, 16), make) as batches:
            for batch in batches: ...

    An exception raised by `make` is raised again, unchanged, where its batch would have been
    yielded; leaving the `with` block early (a break, an error in a step) stops and joins the thread.
    """

    def __init__(self, items: Iterable, make: Callable[[Any], Any], depth: int = 2,
                 device: torch.device | None = None):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        cuda_index = None
        if device is not None and device.type == "cuda":  # the thread pins on this worker's GPU
            cuda_index = device.index if device.index is not None else torch.cuda.current_device()
        self._thread = threading.Thread(target=self._fill, args=(iter(items), make, cuda_index),
                                        name="batch-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        if self._thread.ident is None:
            raise RuntimeError("use Prefetcher in a `with` block: it starts and stops a thread")
        while not self._stop.is_set():
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the thread and wait for it: drain the queue so a blocked `put` returns."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.01)

    def _fill(self, items: Iterator, make: Callable[[Any], Any], cuda_index: int | None) -> None:
        try:
            if cuda_index is not None:
                torch.cuda.set_device(cuda_index)  # per thread; else pinning would open a context on GPU 0
            for item in items:
                if not self._put(make(item)):
                    return
        except BaseException as e:  # any error: the consumer would wait forever
            self._put(_Failed(e))
            return
        self._put(_DONE)

    def _put(self, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


