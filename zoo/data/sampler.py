"""Training order: a seeded, resumable, rank-sharded sampler that hands each sample its own seed."""
from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class TrainSampler(Sampler):
    """Yields ``(index, sample_seed)``. The permutation depends on (seed, epoch) only; like DistributedSampler,
    the epoch is padded by repeating its head to a multiple of ``world_size`` and rank r takes positions
    r, r + world_size, ... . ``sample_seed`` depends on (seed, epoch, position in the epoch) only, so a sample
    gets the same augmentation whichever worker or rank loads it and however the run was resumed.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.length, self.seed, self.shuffle, self.rank, self.world_size = length, seed, shuffle, rank, world_size
        self.num_samples = -(-length // world_size)  # per rank, after padding
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Moving to another epoch forgets a ``set_start`` made for the previous one."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def set_start(self, n: int) -> None:
        """Skip this rank's first ``n`` items of the current epoch (resuming mid-epoch loads nothing twice)."""
        if not 0 <= n <= self.num_samples:
            raise ValueError(f"start {n} is not in 0..{self.num_samples}")
        self.start = n

    def epoch_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices and sample seeds of the whole padded epoch, all ranks together."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        seeds = rng.integers(0, 2**31, self.length)
        padded = self.num_samples * self.world_size  # padding repeats the head, seeds included
        return np.resize(order, padded), np.resize(seeds, padded)

    def __iter__(self):
        order, seeds = self.epoch_order()
        mine = slice(self.rank + self.start * self.world_size, None, self.world_size)
        return iter([(int(i), int(s)) for i, s in zip(order[mine], seeds[mine])])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardedBatches(Sampler):
    """Evaluation across ranks: ``indices`` cut into the batches one process would make (``batch_size`` in order,
    the last one short), and rank r takes batches r, r + world_size, ... . No image is dropped or repeated, and every
    batch holds the images it would hold in one process, so a batch's padding (and a keep-ratio model's detections)
    are the same; a rank may get one batch fewer than another, or none."""

    def __init__(self, indices, batch_size: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        indices = list(indices)
        batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        self.batches = batches[rank::world_size]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
