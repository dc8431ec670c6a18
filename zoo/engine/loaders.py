"""Compose a split's data loader from config: dataset + the model's transform + sampler + collate."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from torch.utils.data import BatchSampler, DataLoader

from zoo.config import DataConfig
from zoo.data.collate import Collate
from zoo.data.sampler import TrainSampler
from zoo.registry import DATASETS, TRANSFORMS


def build_split(data: DataConfig, model: DictConfig, split: str, batch_size: int, seed: int = 0, rank: int = 0,
                world_size: int = 1) -> tuple[DataLoader, TrainSampler | None]:
    """The train split gets the model's train transform and a seeded, shardable, resumable sampler;
    val and test get the test transform, in order, without dropping the last batch."""
    node = data.get(split) if split != "test" else (data.test or data.val)
    if not node:
        raise ValueError(f"data '{data.name}' has no '{split}' split configured")
    transforms = model.get("transforms")
    if transforms is None or "train" not in transforms or "test" not in transforms:
        raise ValueError(f"model '{model.get('name')}' needs transforms.train and transforms.test")
    dataset = DATASETS.build(node)
    dataset.transform = TRANSFORMS.build(transforms.train if split == "train" else transforms.test)
    collate = Collate(mean=list(data.mean), std=list(data.std), size_divisor=data.size_divisor)
    workers = int(data.num_workers)
    common: dict[str, Any] = {"num_workers": workers, "collate_fn": collate, "persistent_workers": False,
                              "pin_memory": False}
    if split == "train":
        sampler = TrainSampler(len(dataset), seed=seed, shuffle=True, rank=rank, world_size=world_size)
        batches = BatchSampler(sampler, batch_size, drop_last=True)
        return DataLoader(dataset, batch_sampler=batches, **common), sampler
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common), None
