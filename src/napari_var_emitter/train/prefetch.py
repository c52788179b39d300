"""Training batches made ahead in worker processes (on a GPU, simulating is the slow part)."""

from __future__ import annotations

import numpy as np
import torch
import torch.multiprocessing as mp


class PrefetchedSource:
    """Wraps a source (SimulatedSource or LabelledSource): `workers` processes each draw batches
    from their own random stream, seeded from `source.rng`, into a bounded queue.

    Batches arrive in the order they are ready, so only `workers=0` (the source itself)
    reproduces a run exactly; resuming reseeds the workers from the restored `rng`."""

    def __init__(self, source, workers: int):
        self.source, self.workers = source, workers
        self.rng = source.rng
        self._queue, self._processes = None, []

    def batch(self, batch_size: int):
        if self._queue is None:
            context = mp.get_context("spawn")
            self._queue = context.Queue(maxsize=2 * self.workers)
            for seed in self.rng.integers(2**63, size=self.workers):
                process = context.Process(target=_produce, args=(self.source, int(seed), batch_size, self._queue),
                                          daemon=True)
                process.start()
                self._processes.append(process)
        return self._queue.get()

    def close(self) -> None:
        for process in self._processes:
            process.terminate()
        self._queue, self._processes = None, []


def _produce(source, seed: int, batch_size: int, queue) -> None:
    torch.set_num_threads(1)
    source.rng = np.random.default_rng(seed)
    while True:
        queue.put(source.batch(batch_size))
