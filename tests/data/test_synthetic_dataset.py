"""The synthetic shapes data set: determinism, class and size coverage, negatives, tight boxes."""
from __future__ import annotations

import time

import numpy as np
import pytest

from zoo.data import SyntheticShapes, build_dataset, synthetic


@pytest.fixture(scope="module")
def annotations() -> list[dict]:
    ds = SyntheticShapes(num_images=600, seed=3)
    return [ds.get_annotation(i) for i in range(len(ds))]


def test_same_seed_gives_identical_samples_and_splits_differ():
    a, b = SyntheticShapes(num_images=5, seed=1), SyntheticShapes(num_images=5, seed=1)
    val, other = SyntheticShapes(num_images=5, seed=1, split="val"), SyntheticShapes(num_images=5, seed=2)
    for i in range(5):
        sa, sb = a[i], b[i]
        np.testing.assert_array_equal(sa["image"], sb["image"])
        np.testing.assert_array_equal(sa["boxes"], sb["boxes"])
        np.testing.assert_array_equal(sa["labels"], sb["labels"])
        assert not np.array_equal(sa["image"], val[i]["image"])
        assert not np.array_equal(sa["image"], other[i]["image"])


def test_contract_types_and_boxes_inside_the_image(annotations):
    sample = SyntheticShapes(num_images=1, image_size=200)[0]
    assert sample["image"].shape == (200, 200, 3) and sample["image"].dtype == np.uint8
    assert sample["orig_size"] == (200, 200) and sample["file"] == "synthetic/train/000000"
    boxes = np.concatenate([a["boxes"] for a in annotations])
    assert boxes.dtype == np.float32 and (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 320).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_at_least_five_classes_all_used(annotations):
    names = SyntheticShapes(num_images=1).class_names
    labels = np.concatenate([a["labels"] for a in annotations])
    assert len(names) >= 5 and len(set(names)) == len(names)
    assert set(labels.tolist()) == set(range(len(names)))


def test_sizes_span_small_to_half_the_image(annotations):
    boxes = np.concatenate([a["boxes"] for a in annotations])
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() <= 12 and sides.max() >= 0.45 * 320
    assert 0.2 < np.mean(sides < 32) < 0.6  # small objects are common but not everything


def test_about_five_percent_of_images_are_empty(annotations):
    empty = np.mean([len(a["boxes"]) == 0 for a in annotations])
    assert 0.02 <= empty <= 0.09


@pytest.fixture
def plain(monkeypatch):
    """render() on a black background without clutter or grain: object pixels are exactly the non-zero ones."""
    monkeypatch.setattr(synthetic, "_background", lambda rng, size: np.zeros((size, size, 3), np.uint8))
    monkeypatch.setattr(synthetic, "_clutter", lambda rng, image: None)
    noise = np.full((1, 256, 256, 3), synthetic._GRAIN, np.uint8)  # add then subtract: no change

    def render(seed: int, max_objects: int, min_visible: float = 0.4):
        return synthetic.render(np.random.default_rng(seed), 128, noise, 6, 64, max_objects, 0.0, min_visible)
    return render


def test_a_single_shape_has_exactly_the_box_of_its_pixels(plain):
    for seed in range(40):
        image, boxes, _, visible = plain(seed, max_objects=1)
        ys, xs = np.nonzero(image.any(axis=2))
        assert boxes == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] and visible == [1.0]


def test_occluded_boxes_stay_tight_and_hidden_objects_are_dropped(plain):
    kept, everything = 0, 0
    for seed in range(60):
        image, boxes, _, visible = plain(seed, max_objects=10)
        assert all(0.4 <= v <= 1.0 for v in visible)
        kept += len(boxes)
        everything += len(plain(seed, max_objects=10, min_visible=0.0)[1])
        on = image.any(axis=2)
        for x1, y1, x2, y2 in np.asarray(boxes, int):  # every edge of the box touches a painted pixel
            inside = on[y1:y2, x1:x2]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    assert kept < everything  # some heavily occluded objects were removed from the labels


def test_build_dataset_passes_split_and_generation_is_cheap():
    ds = build_dataset({"type": "synthetic", "num_images": 50}, "val")
    assert ds.split == "val" and len(ds) == 50
    start = time.perf_counter()
    for i in range(50):
        ds.load(i)
    assert (time.perf_counter() - start) / 50 < 0.02  # ~1.5 ms on one core; loose for busy CI machines


def test_ambiguous_objects_can_be_marked_ignore_without_losing_any():
    plain = build_dataset({"type": "synthetic", "num_images": 40}, "val")
    marked = build_dataset({"type": "synthetic", "num_images": 40, "ignore_below_visible": 0.7,
                            "ignore_below_size": 16}, "val")
    for i in range(40):
        a, b = plain.get_annotation(i), marked.get_annotation(i)
        np.testing.assert_array_equal(a["boxes"], b["boxes"])
        assert not a["ignore"].any()
        longer = np.maximum(b["boxes"][:, 2] - b["boxes"][:, 0], b["boxes"][:, 3] - b["boxes"][:, 1])
        np.testing.assert_array_equal(b["ignore"], (b["visible"] < 0.7) | (longer < 16))
    visible = np.concatenate([plain.get_annotation(i)["visible"] for i in range(40)])
    assert (visible < 0.7).any() and (visible == 1.0).mean() > 0.5  # occlusion happens, most objects are whole
