"""Compose a split's data loader from config: dataset + the model's transform + sampler + collate."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from zoo.config import DataConfig, batch_size_divisor
from zoo.data import Collate, TrainSampler, build_dataset, build_loader


def scored_split(data: DataConfig, split: str) -> str:
    """The split actually read for ``split``: data without a test node is tested on val."""
    return split if split != "test" or data.get("test") else "val"


def build_split(data: DataConfig, model: DictConfig, split: str, batch_size: int, seed: int = 0, rank: int = 0,
                world_size: int = 1, class_names: list[str] | None = None) -> tuple[DataLoader, TrainSampler | None]:
    """The train split gets the model's train transform and a seeded, shardable, resumable sampler;
    val and test get the test transform, in order, without dropping the last batch. A split node
    names the data set's own split (``split: trainval``) beside its constructor arguments. A split
    without images, or whose classes are not ``class_names`` (the training split's, in order), is refused:
    it would be scored as empty, or with every label meaning another class."""
    node = data.get(scored_split(data, split))
    if not node:
        raise ValueError(f"data '{data.name}' has no '{split}' split configured")
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    if "split" not in node:
        raise ValueError(f"data.{split} needs a 'split' key naming the data set's split (e.g. trainval)")
    own_split = node.pop("split")
    transforms = model.get("transforms")
    if transforms is None or "train" not in transforms or "test" not in transforms:
        raise ValueError(f"model '{model.get('name')}' needs transforms.train and transforms.test")
    transform = transforms.test
    if split == "train":
        transform = OmegaConf.to_container(transforms.train, resolve=True)
        transform = {**transform, **dict((data.augment or {}).get(transform.get("type"), {}))}
    dataset = build_dataset(node, split=own_split, transform=transform)
    if len(dataset) == 0:
        raise ValueError(f"data.{scored_split(data, split)}: {dataset.name} has no images")
    if class_names is not None and list(dataset.class_names) != list(class_names):
        raise ValueError(f"data.{scored_split(data, split)}: {dataset.name} has the classes {list(dataset.class_names)}, "
                         f"the training split {list(class_names)}; they must be the same, in the same order")
    dataset.stand_in = split == "train"  # a stand-in image would be scored twice
    dataset.cache = {} if data.cache and split == "train" else None  # evaluation reads each image once
    collate = Collate(mean=list(data.mean), std=list(data.std), size_divisor=batch_size_divisor(data, model),
                      pad_fill=model.get("pad_fill", "mean"))
    if split == "train":
        sampler = TrainSampler(len(dataset), seed=seed, shuffle=True, rank=rank, world_size=world_size)
        return build_loader(dataset, batch_size, collate, data.num_workers, sampler=sampler, drop_last=True), sampler
    return build_loader(dataset, batch_size, collate, data.num_workers), None
