"""Registered transforms: box/label/ignore consistency, bounds, seeded determinism, exact inverse scales."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest

from zoo.data import SyntheticShapes, build_transform, to_original
from zoo.data.transforms import AlbumentationsPipeline, Expand, MinIoURandomCrop, ssd_train
from zoo.registry import TRANSFORMS
from zoo.structures import ImageMeta

CONFIGS = [
    {"type": "ssd_train", "size": 96},
    {"type": "resize", "size": 96},
    {"type": "keep_ratio_resize", "short_side": 60, "max_size": 100, "flip": 0.5},
    {"type": "keep_ratio_resize", "short_side": 60, "max_size": 100, "flip": 0.5, "photometric": True, "expand": True,
     "min_iou_crop": True},
    {"type": "cornernet_train", "size": 96, "border": 16},
]


def scene(seed: int = 0, n: int = 12):
    """A 120x160 image with n random boxes; label i and ignore (i odd) let us check they follow their box."""
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, [140, 100], (n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(4, 40, (n, 2))], axis=1).clip(0, [160, 120, 160, 120])
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    return image, boxes.astype(np.float32), np.arange(n), np.arange(n) % 2 == 1


def test_the_recipes_are_registered():
    assert {"ssd_train", "resize", "keep_ratio_resize", "cornernet_train"} <= set(TRANSFORMS.names())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["type"])
def test_labels_and_ignore_follow_their_boxes_which_stay_inside(cfg):
    transform = build_transform(cfg)
    for seed in range(30):
        image, boxes, labels, ignore = scene(seed)
        out = transform(image, boxes, labels, ignore, seed=seed)
        h, w = out["image"].shape[:2]
        assert out["image"].dtype == np.uint8 and out["image"].shape[2] == 3
        assert out["boxes"].dtype == np.float32 and out["labels"].dtype == np.int64 and out["ignore"].dtype == bool
        assert len(out["boxes"]) == len(out["labels"]) == len(out["ignore"])
        np.testing.assert_array_equal(out["ignore"], out["labels"] % 2 == 1)
        assert (out["boxes"] >= 0).all() and (out["boxes"] <= [w, h, w, h]).all()
        assert (out["boxes"][:, 2:] > out["boxes"][:, :2]).all()


def test_ssd_train_boxes_stay_on_their_pixels():
    """A red rectangle whose box is exact must still fill its box after expand, crop, flip and resize."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[30:90, 40:100, 0] = 255
    transform = ssd_train(size=96, photometric=False)
    for seed in range(40):
        out = transform(image, [[40, 30, 100, 90]], [0], [False], seed=seed)
        ys, xs = np.nonzero(out["image"][..., 0] > 127)
        if len(out["boxes"]):
            np.testing.assert_allclose(out["boxes"][0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)


def test_cornernet_crop_scales_objects_by_one_over_the_drawn_scale_on_a_black_canvas():
    """A red square must fill its box after the window crop, resize and flip; its size changes by
    size / window, and what a window wider than the image takes from beyond it is black."""
    image = np.full((120, 160, 3), 60, np.uint8)
    image[60:80, 70:90] = (255, 0, 0)
    transform = build_transform({"type": "cornernet_train", "size": 96, "scales": [0.5, 1.5], "border": 16,
                                 "photometric": False})
    windows = set()
    for seed in range(60):
        out = transform(image, [[70, 60, 90, 80]], [0], [False], seed=seed)
        if not len(out["boxes"]):
            continue
        x0, y0, x1, y1 = out["boxes"][0]
        ys, xs = np.nonzero(out["image"][..., 0] > 127)
        np.testing.assert_allclose(out["boxes"][0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)
        if 0 < x0 and x1 < 96 and 0 < y0 and y1 < 96:  # the whole square inside the window
            window = round(float(20 * 96 / (x1 - x0)))
            windows.add(window)
            if window == 144:  # 144 px around a centre on a 120-px-high image: black rows
                assert (out["image"].reshape(-1, 3) == 0).all(axis=1).any()
    assert windows == {48, 144}  # 0.5 x 96 and 1.5 x 96


def test_seed_makes_the_output_deterministic_and_seeds_differ():
    ds = SyntheticShapes(num_images=4, transform=ssd_train(size=96))
    first, again = ds[(2, 123)], ds[(2, 123)]
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["boxes"], again["boxes"])
    others = [ds[(2, seed)]["image"] for seed in range(5)]
    assert any(not np.array_equal(first["image"], o) for o in others)
    unseeded = [ds[2]["image"] for _ in range(5)]
    assert any(not np.array_equal(unseeded[0], u) for u in unseeded[1:])


def test_random_steps_are_drawn_independently():
    """albumentations' set_random_seed seeds each op alike; equal probabilities would then fire together."""
    transform = ssd_train(size=32, min_iou_crop=False)
    expand, flip = (op for op in transform.compose.transforms if type(op).__name__ in ("Expand", "HorizontalFlip"))
    image, boxes, labels, ignore = scene()
    decisions = set()
    for seed in range(40):
        transform(image, boxes, labels, ignore, seed=seed)
        decisions.add((bool(expand.params), bool(flip.params)))
    assert decisions == {(False, False), (False, True), (True, False), (True, True)}


def test_switched_off_ssd_train_is_a_plain_resize():
    image, boxes, labels, ignore = scene()
    off = ssd_train(size=80, photometric=False, expand=False, min_iou_crop=False, flip=False)
    plain = build_transform({"type": "resize", "size": 80})
    a, b = off(image, boxes, labels, ignore, seed=5), plain(image, boxes, labels, ignore)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["boxes"], b["boxes"])


@pytest.mark.parametrize("cfg, size", [({"type": "resize", "size": 96}, (96, 96)),
                                       ({"type": "keep_ratio_resize", "short_side": 60, "max_size": 100}, (60, 80)),
                                       ({"type": "keep_ratio_resize", "short_side": 90, "max_size": 100}, (75, 100))])
def test_eval_scale_maps_boxes_back_exactly(cfg, size):
    image, boxes, labels, ignore = scene(3)
    out = build_transform(cfg)(image, boxes, labels, ignore)
    assert out["image"].shape[:2] == size
    meta = ImageMeta(image_id=0, orig_size=(120, 160), input_size=size, scale=out["scale"])
    np.testing.assert_allclose(to_original(out["boxes"], meta), boxes, atol=1e-3)


def test_expand_moves_boxes_with_their_pixels():
    image, boxes, labels, ignore = scene(4, n=3)
    out = AlbumentationsPipeline([Expand(max_ratio=3, fill=(1, 2, 3), p=1)])(image, boxes, labels, ignore, seed=9)
    big = out["image"]
    assert big.shape[0] > 120 and big.shape[1] > 160
    candidates = np.argwhere((big == image[0, 0]).all(axis=2))  # where the image's first pixel may have gone
    top, left = next((y, x) for y, x in candidates if np.array_equal(big[y:y + 120, x:x + 160], image))
    outside = np.ones(big.shape[:2], bool)
    outside[top:top + 120, left:left + 160] = False
    assert (big[outside] == (1, 2, 3)).all()
    np.testing.assert_allclose(out["boxes"], boxes + [left, top, left, top], atol=1e-3)


def test_min_iou_crop_keeps_boxes_centred_in_an_overlapping_patch():
    crop_op = MinIoURandomCrop()
    pipeline = AlbumentationsPipeline([crop_op])
    image, boxes, labels, ignore = scene(5)
    cropped = 0
    for seed in range(30):
        out = pipeline(image, boxes, labels, ignore, seed=seed)
        x0, y0, x1, y1 = crop_op.params["crop"]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.all((centres > (x0, y0)) & (centres < (x1, y1)), axis=1)
        np.testing.assert_array_equal(out["labels"], labels[inside])
        assert out["image"].shape[:2] == (y1 - y0, x1 - x0)
        if out["image"].shape[:2] != image.shape[:2]:
            cropped += 1
            assert (x1 - x0) * (y1 - y0) >= 0.3 * 0.3 * 160 * 120 and 0.5 <= (y1 - y0) / (x1 - x0) <= 2
    assert cropped >= 5  # with boxes this small, high IoU targets fail and often the whole image is kept


def test_ssd_train_is_cheap():
    transform = ssd_train(size=320)
    ds = SyntheticShapes(num_images=20)
    samples = [ds.load(i) for i in range(20)]
    start = time.perf_counter()
    for seed, (image, ann) in enumerate(samples):
        transform(image, ann["boxes"], ann["labels"], ann["ignore"], seed=seed)
    assert (time.perf_counter() - start) / 20 < 0.03  # ~2.5 ms on one core; loose for busy CI machines


@pytest.mark.parametrize("flip", [True, 1.5, -0.1])
def test_keep_ratio_flip_is_a_probability(flip):
    with pytest.raises(ValueError, match=r"flip is a probability in \[0, 1\]"):
        build_transform({"type": "keep_ratio_resize", "short_side": 100, "max_size": 200, "flip": flip})


def test_pca_lighting_shifts_every_pixel_by_one_colour_along_imagenet_components():
    import albumentations as A

    from zoo.data.transforms import PCALighting

    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (8, 8, 3), dtype=np.uint8)
    op = PCALighting(std=0.1)
    pipeline = A.Compose([op])
    pipeline.set_random_state(np.random.default_rng(3), random.Random(3))
    shift = pipeline(image=image)["image"].astype(int) - image.astype(int)
    assert (shift == shift[0, 0]).all() and np.abs(shift[0, 0]).max() > 0  # one colour for the whole image
    assert np.array_equal(PCALighting(std=0.0).apply(image, alpha=np.zeros(3)), image)


@pytest.mark.parametrize("any_patch", [False, True])
def test_the_any_patch_sampler_crops_where_no_overlap_threshold_can_be_met(any_patch):
    """A 2x2 object in a 100x100 image: no patch of scale >= 0.3 reaches IoU 0.1 with it, so without
    SSD's seventh sampler ("any patch") only the whole image can come out."""
    import albumentations as A

    image = np.zeros((100, 100, 3), np.uint8)
    crop = MinIoURandomCrop(any_patch=any_patch)
    pipeline = A.Compose([crop], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    shapes = set()
    for seed in range(40):
        pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
        shapes.add(pipeline(image=image, bboxes=[[49, 49, 51, 51]], labels=[0])["image"].shape[:2])
    assert (shapes == {(100, 100)}) is not any_patch


def test_ssd_photometric_steps_fire_independently():
    """Each of brightness, contrast, saturation and hue on its own with p = 0.5: about 1 image in 16 is
    left as it is (one ColorJitter with p = 0.5 would leave half)."""
    image = np.random.default_rng(0).integers(60, 200, (16, 16, 3), dtype=np.uint8)
    transform = ssd_train(size=16, expand=False, min_iou_crop=False, flip=False)
    untouched = sum(np.array_equal(transform(image, [], [], [], seed=seed)["image"], image) for seed in range(320))
    assert 5 <= untouched <= 40  # 20 expected


def test_the_pil_backend_resizes_as_detectron2_does():
    """detectron2's ResizeShortestEdge: sizes rounded half up (int(x + 0.5)), Pillow's bilinear filter on 8 bits."""
    from PIL import Image

    from zoo.data.transforms.ops import KeepRatioResize

    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    params = KeepRatioResize(800, 1333, backend="pil").get_params_dependent_on_data({"shape": image.shape}, {})
    assert params["out_size"] == (800, 1067)
    out = KeepRatioResize(800, 1333, backend="pil").apply(image, interpolation=None, **params)
    assert np.array_equal(out, np.asarray(Image.fromarray(image).resize((1067, 800), Image.BILINEAR)))
    assert out.dtype == np.uint8
