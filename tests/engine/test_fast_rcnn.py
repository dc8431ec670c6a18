"""Fast R-CNN on given proposals: a proposals file per split rides through the data (moved by the transform with the
objects) into the detector, which trains and evaluates on them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from zoo.config.run import RunConfig
from zoo.data.proposals import write_proposals
from zoo.engine.loaders import build_split
from zoo.engine.trainer import Trainer


def proposals_file(cfg, split, path, seed=0):
    """Per image its objects' boxes jittered and random boxes: what a proposal method gives, roughly."""
    loader, _ = build_split(RunConfig.from_composed(cfg), split, 4, in_order=True)
    rng = np.random.default_rng(seed)
    ids, boxes = [], []
    for index in range(len(loader.dataset)):
        ann = loader.dataset.get_annotation(index)
        objects = np.asarray(ann["boxes"], np.float32).reshape(-1, 4)
        jittered = objects + rng.normal(0, 3, objects.shape).astype(np.float32)
        corners = rng.uniform(0, ann["width"], (40, 2)).astype(np.float32)
        random = np.concatenate([corners, corners + rng.uniform(8, 48, (40, 2)).astype(np.float32)], axis=1)
        ids.append(index)
        boxes.append(np.concatenate([jittered, random]))
    write_proposals(path, ids, boxes, method="test")
    return path


@pytest.mark.parametrize("model", [["model=fast_rcnn_lite"], ["model=spp_lite", "trainer/stages=spp_net"],
                                   ["model=rcnn_lite", "trainer/stages=rcnn_svm"]])
def test_fast_rcnn_trains_and_evaluates_on_a_proposals_file(compose_cfg, tmp_path, model):
    base = compose_cfg(*TINY)
    train = proposals_file(base, "train", tmp_path / "train.pkl")
    val = proposals_file(base, "val", tmp_path / "val.pkl")
    cfg = compose_cfg(*TINY, *model, "trainer.max_iters=5", "trainer.eval_every=0",
                      f"+data.train.proposals={train}", f"+data.val.proposals={val}")
    trainer = Trainer(cfg, tmp_path / "run")
    batch = next(iter(trainer.train_loader))
    assert batch.proposals is not None and len(batch.proposals) == len(batch)
    results = trainer.fit()
    assert set(trainer.losses) >= {"roi/cls", "roi/loc"} | ({"roi/svm"} if model[0] == "model=rcnn_lite" else set())
    assert results["steps"] == 5 and 0.0 <= results["metrics"]["voc07_map50"] <= 1.0


def test_proposals_move_with_the_resize_and_the_flip(compose_cfg, tmp_path):
    base = compose_cfg(*TINY)
    val = proposals_file(base, "val", tmp_path / "val.pkl")
    train = proposals_file(base, "train", tmp_path / "train.pkl")
    cfg = compose_cfg(*TINY, "model=fast_rcnn_lite", f"+data.val.proposals={val}", f"+data.train.proposals={train}",
                      "model.transforms.train.flip=1.0", "model.transforms.train.expand=false",
                      "model.transforms.train.min_iou_crop=false", "model.transforms.train.photometric=false")
    run = RunConfig.from_composed(cfg)
    loader, _ = build_split(run, "val", 2)
    sample, given = loader.dataset[0], loader.dataset.proposals[0]
    scale = np.array(sample["scale"] * 2, np.float32)
    assert np.allclose(sample["proposals"], given * scale, atol=1e-3)  # the test transform: a resize
    loader, _ = build_split(run, "train", 2)
    sample, given = loader.dataset[(0, 7)], loader.dataset.proposals[0] * np.array(sample["scale"] * 2, np.float32)
    width = sample["image"].shape[1]
    mirrored = np.stack([width - given[:, 2], given[:, 1], width - given[:, 0], given[:, 3]], axis=1)
    assert np.allclose(sample["proposals"], mirrored, atol=1e-2)  # flip: 1.0 mirrors every image


def test_without_proposals_fast_rcnn_says_what_to_give(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"data\.train\.proposals"):
        from zoo.config import model_node
        from zoo.models.detectors import build_detector

        model = build_detector(model_node(compose_cfg("model=fast_rcnn_lite").model), num_classes=3).eval()
        model(torch.zeros(1, 3, 64, 64))


def test_the_warp_pooler_crops_each_proposal_with_its_context():
    """R-CNN's crops: a box grown so that ``context`` px of the warped crop lie outside it; on an image that is a
    ramp in x, a row of the crop inside the image reads from the grown box's left edge to its right one."""
    from zoo.models.heads.roi_box_head import RoIPooler

    image = torch.arange(200, dtype=torch.float32).repeat(1, 3, 100, 1)  # value = x + 0.5 at each pixel centre
    box = torch.tensor([[50.0, 10.0, 150.0, 90.0]])
    crops = RoIPooler([1], type="warp", output_size=20, context=5)([image], [box])
    assert crops.shape == (1, 3, 20, 20)
    grown = 100 * 20 / (20 - 2 * 5)  # 200 px wide: x from 0 to 200
    step = grown / 20
    assert torch.allclose(crops[0, 0, 10, [0, -1]], torch.tensor([0 + step / 2 - 0.5, 200 - step / 2 - 0.5]), atol=1e-3)


def test_the_svms_learn_from_ground_truths_and_the_hardest_negatives():
    from zoo.models.heads.svm import ClassSVMs

    svms = ClassSVMs(dim=2, num_classes=2, hard=1)
    with torch.no_grad():
        svms.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    vectors = torch.tensor([[2.0, -2.0],    # class 0, beyond its margin: no loss
                            [-2.0, 0.5],    # class 1, inside its margin: (1 - 0.5)^2
                            [-3.0, -0.5],   # a negative
                            [-1.5, -4.0]])  # a negative
    loss = svms.loss(vectors, torch.tensor([0, 1, -1, -1]))
    # hardest negative of class 0: -1.5 (row 3; beyond the margin, no loss); of class 1: -0.5 (row 2): (1 - 0.5)^2.
    # Two positives and one negative per class count: (0.25 + 0.25) / 4.
    assert torch.isclose(loss, torch.tensor(0.5 / 4))


def test_zoo_export_refuses_a_detector_of_given_proposals_by_name(compose_cfg, tmp_path):
    from zoo.apis.export import export_checkpoint

    base = compose_cfg(*TINY)
    train = proposals_file(base, "train", tmp_path / "train.pkl")
    val = proposals_file(base, "val", tmp_path / "val.pkl")
    cfg = compose_cfg(*TINY, "model=fast_rcnn_lite", "trainer.max_iters=1", "trainer.eval_every=0",
                      f"+data.train.proposals={train}", f"+data.val.proposals={val}")
    Trainer(cfg, tmp_path / "run").fit()
    export = compose_cfg(f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'last.pt'}", f"out={tmp_path / 'x.pt2'}",
                         config_name="export")
    with pytest.raises(ValueError, match=r"fast_rcnn_lite detects on given proposals.*cannot be exported"):
        export_checkpoint(export)
    assert not list(tmp_path.glob("x.*"))
