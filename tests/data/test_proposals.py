"""Proposal files (zoo.data.proposals, zoo-proposals): they round-trip, and bad ones are treated as bad annotations."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from zoo.data.errors import DataError, DataWarning
from zoo.data.proposals import proposals_for, read_proposals, write_proposals
from zoo.utils.safe_pickle import UnsafePickleError


def test_a_file_round_trips(tmp_path):
    boxes = [np.array([[1, 2, 30, 40], [5, 5, 9, 9]], np.float32), np.zeros((0, 4), np.float32)]
    write_proposals(tmp_path / "p.pkl", [7, 9], boxes, [np.array([2.0, 1.0]), np.zeros(0)], method="test",
                    seconds_per_image=[0.5, 0.25])
    data = read_proposals(tmp_path / "p.pkl")
    assert data["ids"] == [7, 9] and data["bbox_mode"] == "XYXY_ABS" and data["seconds_per_image"] == [0.5, 0.25]
    assert np.array_equal(data["boxes"][0], boxes[0]) and data["objectness_logits"][0].tolist() == [2.0, 1.0]


def test_boxes_past_the_image_are_clipped_empty_ones_dropped_and_both_counted(tmp_path):
    write_proposals(tmp_path / "p.pkl", [1, 2], [np.array([[-5, 0, 50, 70], [10, 10, 10, 20]]),
                                                 np.array([[200, 200, 300, 300]])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = proposals_for(tmp_path / "p.pkl", {1: (60, 40), 2: (60, 40)})
    said = " | ".join(str(w.message) for w in caught if issubclass(w.category, DataWarning))
    assert found[1].tolist() == [[0, 0, 40, 60]] and found[2].shape == (0, 4)
    assert "clipped 2 proposals" in said and "dropped 2 proposals with no area" in said and "1 images have no" in said


def test_an_image_of_the_split_missing_from_the_file_is_named(tmp_path):
    write_proposals(tmp_path / "p.pkl", [1], [np.array([[0, 0, 5, 5]])])
    with pytest.raises(DataError, match=r"p\.pkl.*no proposals for 1 image.*first: id 3"):
        proposals_for(tmp_path / "p.pkl", {1: (10, 10), 3: (10, 10)})


@pytest.mark.parametrize("content,match", [
    ({"ids": [1], "boxes": [np.array([[0, 0, np.nan, 5]])]}, "non-finite"),
    ({"ids": [1], "boxes": [np.array([0, 0, 5, 5])]}, r"finite \(N, 4\)"),
    ({"ids": [1, 2], "boxes": [np.zeros((0, 4))]}, "2 ids but 1 box lists"),
    ({"ids": [1], "boxes": [np.zeros((1, 4))], "bbox_mode": "XYWH_ABS"}, "bbox_mode"),
    ([1, 2, 3], "not a proposals file"),
])
def test_a_malformed_file_is_named_with_what_is_wrong(tmp_path, content, match):
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(DataError, match=match):
        read_proposals(tmp_path / "bad.pkl")


def test_a_pickle_of_anything_but_arrays_is_refused(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"ids": [1], "boxes": [np.zeros((1, 4))], "x": DataError}))
    with pytest.raises(UnsafePickleError, match="zoo.data.errors.DataError"):
        read_proposals(tmp_path / "evil.pkl")


def test_zoo_proposals_writes_a_trained_rpns_boxes_for_every_image(compose_cfg, tmp_path):
    from tests.conftest import TINY
    from zoo.apis.proposals import write_split_proposals
    from zoo.engine.trainer import Trainer

    Trainer(compose_cfg(*TINY, "model=faster_rcnn_lite", "trainer.max_iters=1", "trainer.eval_every=0"),
            tmp_path / "run").fit()
    checkpoint = str(tmp_path / "run" / "checkpoints" / "last.pt")
    for split, images in (("val", 8), ("train", 16)):
        info = write_split_proposals(checkpoint, tmp_path / f"{split}.pkl", split=split, max_proposals=50,
                                     progress=False)
        data = read_proposals(info["file"])
        assert info["images"] == images and data["ids"] == list(range(images))
        assert all(0 < len(b) <= 50 for b in data["boxes"]) and len(data["seconds_per_image"]) == images
        assert max(float(b.max()) for b in data["boxes"]) <= 128  # the 128-px images' own pixels
        proposals_for(info["file"], {i: (128, 128) for i in range(images)})
