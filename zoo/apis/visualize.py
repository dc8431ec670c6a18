"""A checkpoint's detections and the ground truth on sample images, as one PNG grid: the API behind
``zoo-visualize``."""
from __future__ import annotations

from zoo.apis.run import TrainedRun
from zoo.engine.drawing import check_grid_options, write_detection_grid
from zoo.tta import build_tta


def visualize_checkpoint(checkpoint: str, out: str, split: str = "test", num_images: int = 8,
                         score_threshold: float = 0.3, tile: int = 480, device: str = "auto",
                         data_root: str | None = None, tta: dict | None = None) -> str:
    """The first ``num_images`` of ``split`` drawn by ``write_detection_grid`` (with test-time augmentation
    ``tta``, a tta config node, if given). Returns the path."""
    check_grid_options(out, num_images, tile)
    trained = TrainedRun(checkpoint, device, data_root)
    loader = trained.loader(split, min(num_images, 8))
    return write_detection_grid(build_tta(trained.model, tta).eval(), loader, out, num_images, score_threshold, tile,
                                trained.layout, source=f"split '{split}' of {checkpoint}")
