"""Collate: normalisation, padding to size_divisor, targets and metadata; to_original."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data import Collate, to_original
from zoo.structures import Batch, ImageMeta

MEAN, STD = (100.0, 110.0, 120.0), (10.0, 20.0, 40.0)


def sample(h: int, w: int, value=(150, 150, 150), n: int = 2, image_id: int = 0) -> dict:
    return dict(image=np.full((h, w, 3), value, np.uint8), boxes=np.arange(n * 4, dtype=np.float32).reshape(n, 4),
                labels=np.arange(n), ignore=np.arange(n) % 2 == 0, image_id=image_id, file=f"f{image_id}",
                orig_size=(2 * h, 2 * w), scale=(0.5, 0.5))


def test_pads_to_the_batch_max_rounded_to_the_divisor():
    batch = Collate(MEAN, STD, size_divisor=32)([sample(50, 70), sample(65, 40, image_id=1)])
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.images.shape == (2, 3, 96, 96) and batch.images.dtype == torch.float32
    assert (batch.images[0, :, 50:] == 0).all() and (batch.images[0, :, :, 70:] == 0).all()
    assert (batch.images[1, :, 65:] == 0).all() and (batch.images[1, :, :, 40:] == 0).all()
    assert Collate(MEAN, STD)([sample(50, 70)]).images.shape == (1, 3, 50, 70)


def test_black_padding_is_black_once_normalised():
    batch = Collate(MEAN, STD, pad_fill="black")([sample(4, 6), sample(2, 3, value=(0, 0, 0), image_id=1)])
    black = torch.tensor([-100 / 10, -110 / 20, -120 / 40]).view(3, 1, 1)
    torch.testing.assert_close(batch.images[1], black.expand(3, 4, 6))  # the black image and its padding alike
    assert (batch.images[0] == torch.tensor([5.0, 2.0, 0.75]).view(3, 1, 1)).all()
    with pytest.raises(ValueError, match="pad_fill must be 'mean' or 'black'"):
        Collate(MEAN, STD, pad_fill="grey")


def test_normalises_each_rgb_channel():
    batch = Collate(MEAN, STD)([sample(4, 6, value=(200, 150, 40))])
    expected = torch.tensor([(200 - 100) / 10, (150 - 110) / 20, (40 - 120) / 40]).view(3, 1, 1)
    torch.testing.assert_close(batch.images[0], expected.expand(3, 4, 6))


def test_targets_and_metas():
    batch = Collate(MEAN, STD)([sample(10, 20, n=3, image_id=7), sample(10, 20, n=0, image_id=8)])
    first, empty = batch.targets
    assert first["boxes"].shape == (3, 4) and first["boxes"].dtype == torch.float32
    assert first["labels"].dtype == torch.int64 and first["ignore"].tolist() == [True, False, True]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["ignore"].dtype == torch.bool
    assert batch.metas[0] == ImageMeta(image_id=7, orig_size=(20, 40), input_size=(10, 20), scale=(0.5, 0.5),
                                       file="f7")


def test_to_original_undoes_the_scale_and_clips():
    meta = ImageMeta(image_id=0, orig_size=(100, 200), input_size=(320, 320), scale=(1.6, 3.2))
    boxes = np.array([[16, 32, 160, 160], [-8, 0, 400, 400]], np.float32)
    expected = [[10, 10, 100, 50], [0, 0, 200, 100]]
    np.testing.assert_allclose(to_original(boxes, meta), expected)
    torch.testing.assert_close(to_original(torch.from_numpy(boxes), meta), torch.tensor(expected, dtype=torch.float32))


def test_a_mean_or_std_without_three_values_names_the_key():
    with pytest.raises(ValueError, match=r"data.std must hold 3 values .*got \[58.0\]"):
        Collate([123.0, 116.0, 103.0], [58.0])


def test_samples_left_out_are_dropped_and_counted():
    batch = Collate([0, 0, 0], [1, 1, 1])([None, sample(4, 6), None])
    assert len(batch) == 1 and batch.skipped == 2 and len(batch.metas) == 1
    empty = Collate([0, 0, 0], [1, 1, 1])([None])
    assert len(empty) == 0 and empty.skipped == 1
