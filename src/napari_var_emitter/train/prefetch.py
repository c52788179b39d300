"""Training batches made ahead in worker processes (on a GPU, simulating is the slow part)."""

from __future__ import annotations

import queue
import threading

import numpy as np
import torch
import torch.multiprocessing as mp


class PrefetchedSource:
    """Wraps a source (SimulatedSource or LabelledSource): `workers` processes each draw batches
    from their own random stream, seeded from `source.rng`, into a bounded queue; a thread of
    this process takes the next batch from it while the training step runs (receiving a batch
    of 64 tiles, its tensors mapped from shared memory, took 4-25 ms on 2 CPU cores).

    Batches arrive in the order they are ready, so only `workers=0` (the source itself)
    reproduces a run exactly; resuming reseeds the workers from the restored `rng`."""

    def __init__(self, source, workers: int):
        self.source, self.workers = source, workers
        self.rng = source.rng
        self._processes: list = []
        self._received: queue.Queue | None = None
        self._receiver: threading.Thread | None = None
        self._stop = threading.Event()

    def batch(self, batch_size: int):
        if self._received is None:
            context = mp.get_context("spawn")
            made = context.Queue(maxsize=2 * self.workers)
            for seed in self.rng.integers(2**63, size=self.workers):
                process = context.Process(target=_produce, args=(self.source, int(seed), batch_size, made), daemon=True)
                process.start()
                self._processes.append(process)
            self._stop.clear()
            self._received = queue.Queue(maxsize=1)
            self._receiver = threading.Thread(target=_receive, args=(made, self._received, self._stop), daemon=True,
                                              name="receive-batches")
            self._receiver.start()
        batch = self._received.get()
        if isinstance(batch, Exception):  # receiving failed: say so here rather than wait forever
            raise batch
        return batch

    def close(self) -> None:
        self._stop.set()
        if self._receiver is not None:
            self._receiver.join(timeout=5)  # before the workers go, so no batch is half received
        for process in self._processes:
            process.terminate()
        self._processes, self._received, self._receiver = [], None, None


def _produce(source, seed: int, batch_size: int, made) -> None:
    torch.set_num_threads(1)
    source.rng = np.random.default_rng(seed)
    while True:
        made.put(source.batch(batch_size))


def _receive(made, received: queue.Queue, stop: threading.Event) -> None:
    """Move batches from the workers' queue to `received`, one ahead, until `stop`; an error
    in receiving is passed on in their place."""
    while not stop.is_set():
        try:
            batch = made.get(timeout=0.2)
        except queue.Empty:
            continue
        except Exception as exc:  # handed to the training loop, which raises it
            batch = exc
        while not stop.is_set():
            try:
                received.put(batch, timeout=0.2)
                break
            except queue.Full:
                continue
        if isinstance(batch, Exception):
            return
