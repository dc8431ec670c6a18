"""End to end: config -> data set -> loader; batches do not depend on the worker count, resume is exact."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from zoo.data import Collate, TrainSampler, build_dataset, build_loader
from zoo.registry import DATASETS, ConfigError


def batches(num_workers: int, start: int = 0) -> list:
    ds = build_dataset(OmegaConf.create({"type": "synthetic", "num_images": 12, "image_size": 64}), "train",
                       OmegaConf.create({"type": "ssd_train", "size": 64}))
    sampler = TrainSampler(len(ds), seed=0)
    sampler.set_epoch(1)
    sampler.set_start(start)
    loader = build_loader(ds, 4, Collate((128, 128, 128), (64, 64, 64)), num_workers=num_workers, sampler=sampler)
    return list(loader)


def test_batches_do_not_depend_on_workers_and_resume_mid_epoch():
    alone, workers, resumed = batches(0), batches(2), batches(0, start=4)
    assert len(alone) == 3 and len(resumed) == 2
    for a, b in zip(alone, workers):
        torch.testing.assert_close(a.images, b.images)
        assert [m.image_id for m in a.metas] == [m.image_id for m in b.metas]
    for a, b in zip(alone[1:], resumed):
        torch.testing.assert_close(a.images, b.images)
        torch.testing.assert_close(a.targets[0]["boxes"], b.targets[0]["boxes"])


def test_iterating_a_loader_leaves_the_global_torch_stream_alone():
    # A resumed run starts a new iterator where an uninterrupted one reuses its persistent workers: a draw
    # from the global stream per iterator would shift every later random number (RPN/RoI sampling).
    before = torch.get_rng_state()
    for _ in range(2):
        batches(0)
    assert torch.equal(before, torch.get_rng_state())


def test_datasets_are_registered_and_split_is_wired_in():
    assert {"synthetic", "voc", "coco"} <= set(DATASETS.names())
    with pytest.raises(ConfigError, match="split"):
        build_dataset({"type": "synthetic", "split": "val"}, "train")
    with pytest.raises(ConfigError, match="known dataset types: coco, synthetic, voc"):
        build_dataset({"type": "nope"}, "train")


def test_a_cached_data_set_loads_each_image_once_and_hands_out_the_same_samples():
    def build():
        return build_dataset(OmegaConf.create({"type": "synthetic", "num_images": 4, "image_size": 64}), "train",
                             OmegaConf.create({"type": "ssd_train", "size": 64}))

    plain, cached = build(), build()
    cached.cache = {}
    loads = []
    load = cached.load
    cached.load = lambda index: loads.append(index) or load(index)
    for epoch in range(2):
        for index in range(4):
            a, b = plain[(index, epoch)], cached[(index, epoch)]
            torch.testing.assert_close(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))
            torch.testing.assert_close(a["boxes"], b["boxes"])
    assert loads == [0, 1, 2, 3]  # the second epoch came from memory
    image, ann = cached.load_cached(0)
    image[:] = 0  # a transform writing into its input leaves the kept copy alone
    ann["boxes"][:] = -1
    assert cached.cache[0][0].any() and (cached.cache[0][1]["boxes"] >= 0).all()


def test_a_split_whose_classes_are_not_the_training_splits_is_refused(compose_cfg, tmp_path, write_voc):
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    write_voc(tmp_path, {"a": dict(objects=[("cat", (1, 1, 9, 9))])}, split="test")
    cfg = compose_cfg("data=bccd", f"data.root={tmp_path}", "data.classes=[cat,dog]",
                      "data.val.class_names=[dog,cat]")  # labels would mean the other class
    run = RunConfig.from_composed(cfg)
    with pytest.raises(ValueError, match=r"data.val: voc\[test\] has the classes \['dog', 'cat'\], the training split "
                                         r"\['cat', 'dog'\]; they must be the same, in the same order"):
        build_split(run, "val", 2, class_names=["cat", "dog"])
    loader, _ = build_split(run, "test", 2, class_names=["cat", "dog"])
    assert len(loader.dataset) == 1


def test_a_model_may_ask_for_batches_padded_to_its_stride(compose_cfg):
    from zoo.config import batch_size_divisor
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    assert batch_size_divisor({"size_divisor": 1}, {"size_divisor": 32}) == 32
    assert batch_size_divisor({"size_divisor": 3}, {"size_divisor": 32}) == 96  # both divide it
    assert batch_size_divisor({"size_divisor": 8}, {}) == 8
    cfg = compose_cfg("model=fpn_r50", "model.input_size=810", "data.val.num_images=2", "data.val.image_size=100")
    batch = next(iter(build_split(RunConfig.from_composed(cfg), "val", 2)[0]))
    assert batch.images.shape[-2:] == (832, 832) and batch.image_sizes == [(810, 810)] * 2  # 810 rounded up to 32
