"""zoo-visualize writes one PNG grid of the requested number of tiles."""
import cv2
import pytest
import torch

from tests.conftest import TINY
from zoo.engine.trainer import Trainer
from zoo.apis.visualize import visualize_checkpoint


def test_grid_of_predictions_and_ground_truth(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    path = visualize_checkpoint(str(tmp_path / "checkpoints" / "last.pt"), str(tmp_path / "grid.png"),
                                num_images=5, score_threshold=0.0, tile=96, device="cpu",
                                tta={"views": [{"scale": 1.0}, {"scale": 1.0, "flip": True}], "merge": {"type": "nms"}})
    image = cv2.imread(path)
    # 5 tiles of 96 px in a 3-column grid (2 rows), 4 px padding around each
    assert image.shape == (2 * 96 + 3 * 4, 3 * 96 + 4 * 4, 3)
    assert image.std() > 0  # something was drawn


def test_a_bad_out_or_tile_is_refused_before_the_checkpoint_loads(tmp_path):
    with pytest.raises(ValueError, match=r"out=.*somedir must name an image file \(\.jpg.*e\.g\. grid\.png"):
        visualize_checkpoint(str(tmp_path / "none.pt"), str(tmp_path / "somedir"))
    with pytest.raises(ValueError, match="tile is each image's size in pixels in the grid, at least 16; got 0"):
        visualize_checkpoint(str(tmp_path / "none.pt"), str(tmp_path / "grid.png"), tile=0)


def test_an_image_without_boxes_is_drawn_as_it_is_without_a_warning():
    import warnings

    from zoo.engine.drawing import draw_detections

    image = torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision warns "boxes doesn't contain any box" for each such image
        drawn = draw_detections(image, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), ["a"])
    assert torch.equal(drawn, image)
    boxed = draw_detections(image, torch.tensor([[2.0, 2.0, 20.0, 20.0]]), torch.tensor([0.9]), torch.tensor([0]), ["a"])
    assert not torch.equal(boxed, image)
