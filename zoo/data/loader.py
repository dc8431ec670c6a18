"""A DataLoader configured for the data side's samplers and collate."""
from __future__ import annotations

import cv2
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.data.sampler import ShardedBatches


def build_loader(dataset: Dataset, batch_size: int, collate, num_workers: int = 0, sampler: Sampler | None = None,
                 shuffle: bool = False, drop_last: bool = False) -> DataLoader:
    """Training passes a TrainSampler (its (index, seed) keys make augmentation reproducible); evaluation
    passes neither sampler nor shuffle and gets the data set in order."""
    if num_workers > 0:
        # Workers already run in parallel, so OpenCV's own thread pool only oversubscribes the cores. This must
        # happen here, before the workers fork: resizing the pool inside a forked worker deadlocks on its lock.
        cv2.setNumThreads(0)
    # A private generator: starting an iteration draws a worker seed from it, which would otherwise advance the
    # global torch stream once per iterator, so a resumed run (a new iterator) would drift from an uninterrupted one.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle if sampler is None else False,
                      collate_fn=collate, num_workers=num_workers, drop_last=drop_last,
                      persistent_workers=num_workers > 0, generator=torch.Generator())


def shard_loader(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """An evaluation ``loader`` (in order, no shuffling) split across ranks by whole batches (``ShardedBatches``:
    nothing dropped or repeated, each batch as one process makes it)."""
    if loader.batch_size is None:
        raise ValueError("shard_loader: the loader must batch by batch_size (it has its own batch sampler)")
    batches = ShardedBatches(list(loader.sampler), loader.batch_size, rank, world_size)
    if loader.num_workers > 0:
        cv2.setNumThreads(0)  # as build_loader: workers already run in parallel
    return DataLoader(loader.dataset, batch_sampler=batches, collate_fn=loader.collate_fn,
                      num_workers=loader.num_workers, persistent_workers=loader.num_workers > 0,
                      generator=torch.Generator())
