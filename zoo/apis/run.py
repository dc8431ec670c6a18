"""The one way to load a trained run: its checkpoint's model, config, class names, test transform and loaders."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from zoo.config.run import RunConfig
from zoo.data import Collate, build_loader, build_transform
from zoo.engine.checkpoint import check_finite, load_checkpoint
from zoo.engine.distributed import local_device
from zoo.engine.loaders import build_collate, build_split
from zoo.engine.precision import memory_format
from zoo.models.detectors import build_detector


class RunData:
    """What a loaded run's data needs: ``run`` (its config as a RunConfig) and ``class_names``; gives its loaders,
    test transform and collate, prepared as the trainer evaluated."""

    run: RunConfig
    class_names: list[str]

    def loader(self, split: str, batch_size: int | None = None) -> DataLoader:
        """A loader over ``split`` ('test' or 'val'; 'train' in order, with the test transform: proposals for
        training) of the run's data, prepared as the trainer evaluated it. ``batch_size`` None: the run's own (with
        keep-ratio data the batch sets each image's padding, and so the anchors' grid)."""
        if split not in ("test", "val", "train"):
            raise ValueError(f"split must be 'test', 'val' or 'train', got '{split}'")
        size = self.run.trainer.batch_size if batch_size is None else batch_size
        loader, _ = build_split(self.run, split, int(size), in_order=split == "train")
        if list(loader.dataset.class_names) != self.class_names:
            raise ValueError(f"checkpoint classes {self.class_names} differ from the data's "
                             f"{list(loader.dataset.class_names)}")
        return loader

    def calibration_loader(self, count: int, batch_size: int) -> DataLoader:
        """``count`` training images spread evenly over the train split, prepared as the test images are (int8
        calibration)."""
        loader, _ = build_split(self.run, "train", batch_size, in_order=True)
        total = len(loader.dataset)
        picked = sorted({int(i * total / count) for i in range(min(count, total))})
        return build_loader(loader.dataset, batch_size, loader.collate_fn, sampler=picked)

    def test_transform(self):
        """The test transform the run's images were prepared with (resize, keep-ratio...)."""
        return build_transform(self.run.model.transforms.test)

    def collate(self) -> Collate:
        return build_collate(self.run)


class TrainedRun(RunData):
    """A checkpoint written by zoo-train, loaded once: ``model`` (with its weights, on ``device``, in the memory
    layout it trained with, so the recorded figure is reproduced exactly; in eval mode), ``run`` (its stored config
    as a RunConfig; ``data_root`` and ``data_overrides`` as ``RunConfig.from_stored`` takes them), ``class_names``,
    ``step`` and the raw ``state``."""

    def __init__(self, checkpoint: str | Path, device: str = "auto", data_root: str | None = None,
                 data_overrides: Mapping[str, Any] | None = None):
        self.checkpoint = str(checkpoint)
        self.state = load_checkpoint(checkpoint)
        check_finite(self.state, checkpoint)
        self.run = RunConfig.from_stored(self.state["config"], data_root, data_overrides, f"checkpoint '{checkpoint}'")
        self.class_names = list(self.state["class_names"])
        self.step = int(self.state.get("step", 0))
        self.device = local_device(device)
        self.layout = memory_format(self.run.channels_last)
        model = build_detector(self.run.detector, num_classes=len(self.class_names))
        model.load_state_dict(self.state["model"])
        self.model = model.to(self.device, memory_format=self.layout).eval()

