"""Compose a split's data loader from config: dataset + the model's transform + sampler + collate."""
from __future__ import annotations

import logging

from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from zoo.config.run import RunConfig
from zoo.data import Collate, TrainSampler, build_dataset, build_loader
from zoo.data.selective_search import proposals_source

log = logging.getLogger("zoo.data")


def build_collate(run: RunConfig) -> Collate:
    """Normalisation and padding as the run trained with them: its data's mean and std, its batch divisor, the
    model's padding fill."""
    return Collate(mean=run.input_mean, std=run.input_std, size_divisor=run.batch_divisor,
                   pad_fill=run.model.get("pad_fill", "mean"))


def split_node(data, split: str) -> tuple[dict, str, str | None]:
    """A data config's split: its data set's constructor arguments, the data set's own split name (``split:
    trainval``) and its ``proposals`` (a file or a method; None)."""
    node = data.get(split)
    if not node:
        raise ValueError(f"data '{data.get('name')}' has no '{split}' split configured")
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    if "split" not in node:
        raise ValueError(f"data.{split} needs a 'split' key naming the data set's split (e.g. trainval)")
    return node, node.pop("split"), node.pop("proposals", None)


def build_split(run: RunConfig, split: str, batch_size: int, seed: int = 0, rank: int = 0,
                world_size: int = 1, class_names: list[str] | None = None,
                in_order: bool = False) -> tuple[DataLoader, TrainSampler | None]:
    """The train split gets the model's train transform and a seeded, shardable, resumable sampler;
    val and test get the test transform, in order, without dropping the last batch (so does the train split with
    ``in_order``: int8 calibration reads training images as the model sees them at test time). A split node
    names the data set's own split (``split: trainval``) beside its constructor arguments. A split
    without images, or whose classes are not ``class_names`` (the training split's, in order), is refused:
    it would be scored as empty, or with every label meaning another class."""
    data, model, scored = run.data, run.model, run.scored_split(split)
    node, own_split, proposals = split_node(data, scored)
    if not proposals and model.get("proposals"):  # RoIs for a detector of given proposals: the model's method
        proposals = model.proposals
        log.info(f"data.{scored}: proposals by {proposals} (model.proposals; data.{scored}.proposals=<file> gives a file)")
    transforms = model.get("transforms")
    if transforms is None or "train" not in transforms or "test" not in transforms:
        raise ValueError(f"model '{model.get('name')}' needs transforms.train and transforms.test")
    training = split == "train" and not in_order
    transform = transforms.test
    if training:
        transform = OmegaConf.to_container(transforms.train, resolve=True)
        transform = {**transform, **dict((data.augment or {}).get(transform.get("type"), {}))}
    dataset = build_dataset(node, split=own_split, transform=transform)
    if len(dataset) == 0:
        raise ValueError(f"data.{scored}: {dataset.name} has no images")
    if class_names is not None and list(dataset.class_names) != list(class_names):
        raise ValueError(f"data.{scored}: {dataset.name} has the classes {list(dataset.class_names)}, "
                         f"the training split {list(class_names)}; they must be the same, in the same order")
    if proposals:  # a file, or a method computed once and cached (selective_search)
        dataset.attach_proposals(proposals_source(str(proposals), dataset, log=log.info))
    dataset.stand_in = training  # a stand-in image would be scored twice
    dataset.cache = {} if data.cache and training else None  # evaluation reads each image once
    collate = build_collate(run)
    if training:
        sampler = TrainSampler(len(dataset), seed=seed, shuffle=True, rank=rank, world_size=world_size)
        return build_loader(dataset, batch_size, collate, data.num_workers, sampler=sampler, drop_last=True), sampler
    first = range(min(data.eval_images, len(dataset))) if data.get("eval_images") else None  # a quick look
    return build_loader(dataset, batch_size, collate, data.num_workers, sampler=first), None
