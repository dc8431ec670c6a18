import math

import pytest
import torch
from torchvision.ops import box_iou

from zoo.ops.soft_nms import batched_soft_nms, soft_nms

# A = [0,0,10,10] (area 100), B = [0,0,10,5] (area 50, inside A), C = [5,0,15,10] (area 100).
# IoU(A,B) = 50/100 = 0.5, IoU(A,C) = 50/150 = 1/3, IoU(B,C) = 25/125 = 0.2.
BOXES = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [5, 0, 15, 10]])
SCORES = torch.tensor([0.9, 0.8, 0.7])


def test_linear_hand_computed():
    # Pick A (0.9). B: 0.5 > 0.3 -> 0.8 * (1 - 0.5) = 0.4; C: 1/3 > 0.3 -> 0.7 * 2/3 = 0.46667.
    # Pick C (0.46667). B: IoU(B,C) = 0.2 <= 0.3 -> unchanged 0.4. Pick B (0.4).
    keep, scores = soft_nms(BOXES, SCORES, method="linear", iou_threshold=0.3)
    assert keep.tolist() == [0, 2, 1]
    assert torch.allclose(scores, torch.tensor([0.9, 0.7 * 2 / 3, 0.4]))


def test_gaussian_hand_computed():
    # sigma = 0.5. Pick A. B: 0.8 * exp(-0.25 / 0.5) = 0.48522; C: 0.7 * exp(-(1/9) / 0.5) = 0.56052.
    # Pick C. B: 0.48522 * exp(-0.04 / 0.5) = 0.44792. Pick B.
    keep, scores = soft_nms(BOXES, SCORES, method="gaussian", sigma=0.5)
    assert keep.tolist() == [0, 2, 1]
    b = 0.8 * math.exp(-0.5) * math.exp(-0.08)
    assert torch.allclose(scores, torch.tensor([0.9, 0.7 * math.exp(-2 / 9), b]))


def test_class_aware():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8])
    keep, kept = soft_nms(boxes, scores, labels=torch.tensor([0, 1]))
    assert keep.tolist() == [0, 1]
    assert torch.allclose(kept, scores)
    # Same label (or no labels): the duplicate decays by exp(-1 / 0.5).
    keep, kept = soft_nms(boxes, scores)
    assert torch.allclose(kept, torch.tensor([0.9, 0.8 * math.exp(-2)]))


def test_score_threshold_drops():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.5])
    # Linear with IoU 1 zeroes the duplicate, which then falls under the threshold.
    keep, kept = soft_nms(boxes, scores, method="linear")
    assert keep.tolist() == [0, 2]
    assert torch.allclose(kept, torch.tensor([0.9, 0.5]))
    # Gaussian: 0.8 * e^-2 = 0.108 < 0.2; the disjoint box keeps 0.5.
    keep, _ = soft_nms(boxes, scores, score_threshold=0.2)
    assert keep.tolist() == [0, 2]
    keep, _ = soft_nms(boxes, scores, score_threshold=0.95)
    assert keep.numel() == 0


def test_max_detections_caps():
    boxes = torch.tensor([[20.0 * i, 0, 20 * i + 10, 10] for i in range(5)])
    scores = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.7])
    keep, kept = soft_nms(boxes, scores, max_detections=3)
    assert keep.tolist() == [3, 4, 1]
    assert torch.allclose(kept, torch.tensor([0.9, 0.7, 0.5]))
    keep, _ = soft_nms(boxes, scores, max_detections=0)
    assert keep.numel() == 0


def test_empty():
    keep, kept = soft_nms(torch.zeros(0, 4), torch.zeros(0))
    assert keep.shape == (0,) and kept.shape == (0,)


def _random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 50
    wh = torch.rand(n, 2, generator=gen) * 30 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_batched_matches_single():
    gen = torch.Generator().manual_seed(0)
    sizes = [7, 12]
    n = max(sizes)
    boxes = torch.zeros(2, n, 4)
    scores = torch.full((2, n), 5.0)  # padding gets the highest score: it must still be ignored
    labels = torch.zeros(2, n, dtype=torch.long)
    valid = torch.zeros(2, n, dtype=torch.bool)
    for i, size in enumerate(sizes):
        boxes[i, :size] = _random_boxes(gen, size)
        scores[i, :size] = torch.rand(size, generator=gen)
        labels[i, :size] = torch.randint(0, 2, (size,), generator=gen)
        valid[i, :size] = True
    for method in ("linear", "gaussian"):
        keep, kept, num = batched_soft_nms(boxes, scores, labels, valid, method=method, max_detections=10)
        assert keep.shape == kept.shape == (2, 10)
        for i, size in enumerate(sizes):
            k1, s1 = soft_nms(boxes[i, :size], scores[i, :size], labels[i, :size], method=method, max_detections=10)
            assert int(num[i]) == k1.numel()
            assert torch.equal(keep[i, : k1.numel()], k1)
            assert torch.allclose(kept[i, : k1.numel()], s1)
            assert (keep[i, k1.numel():] == -1).all() and (kept[i, k1.numel():] == 0).all()


def _reference(boxes, scores, labels, method, sigma, iou_threshold, score_threshold, max_detections,
               merge_exponent=None):
    """Plain per-box loop straight from the paper's pseudo-code; with ``merge_exponent``, CornerNet's box
    merging with one score per box: also each pick's merged box."""
    iou = box_iou(boxes, boxes)
    current = scores.tolist()
    remaining = list(range(len(current)))
    keep, kept, merged = [], [], []
    while remaining and len(keep) < max_detections:
        best = max(remaining, key=lambda j: (current[j], -j))
        if current[best] < score_threshold:
            break
        keep.append(best)
        kept.append(current[best])
        remaining.remove(best)
        total, weight = boxes[best] * scores[best], float(scores[best])
        for j in remaining:
            if labels[j] != labels[best]:
                continue
            o = float(iou[best, j])
            decay = (1 - o if o > iou_threshold else 1.0) if method == "linear" else math.exp(-o * o / sigma)
            if merge_exponent is not None and current[j] >= score_threshold:  # not yet discarded
                w = float(scores[j]) * (1 - decay) ** merge_exponent
                total, weight = total + boxes[j] * w, weight + w
            current[j] *= decay
        merged.append(total / weight)
    return (keep, kept) if merge_exponent is None else (keep, kept, torch.stack(merged))


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_matches_reference(method):
    gen = torch.Generator().manual_seed(1)
    boxes = _random_boxes(gen, 50)
    scores = torch.rand(50, generator=gen)
    labels = torch.randint(0, 3, (50,), generator=gen)
    args = {"method": method, "sigma": 0.5, "iou_threshold": 0.3, "score_threshold": 0.2, "max_detections": 45}
    keep, kept = soft_nms(boxes, scores, labels, **args)
    ref_keep, ref_kept = _reference(boxes, scores, labels.tolist(), **args)
    assert 10 < len(ref_keep) < 45  # decay happens and the score threshold (not the cap) stops it
    assert keep.tolist() == ref_keep
    assert torch.allclose(kept, torch.tensor(ref_kept), atol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match="linear"):
        soft_nms(BOXES, SCORES, method="hard")
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(BOXES, SCORES, sigma=0)
    with pytest.raises(ValueError, match="scores"):
        soft_nms(BOXES, SCORES[:2])
    with pytest.raises(ValueError, match="labels"):
        soft_nms(BOXES, SCORES, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="boxes"):
        batched_soft_nms(BOXES, SCORES)
    with pytest.raises(ValueError, match="valid"):
        batched_soft_nms(BOXES[None], SCORES[None], valid=torch.ones(1, 3))


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_merging_matches_the_reference_loop(method):
    gen = torch.Generator().manual_seed(2)
    boxes = _random_boxes(gen, 60)
    boxes = torch.cat([boxes, boxes + torch.rand(60, 4, generator=gen)])  # near-duplicates to merge
    scores = torch.rand(120, generator=gen)
    labels = torch.randint(0, 3, (120,), generator=gen)
    args = {"method": method, "sigma": 0.5, "iou_threshold": 0.3, "score_threshold": 0.05, "max_detections": 100,
            "merge_exponent": 2.0}
    keep, kept, merged = soft_nms(boxes, scores, labels, **args)
    ref_keep, ref_kept, ref_merged = _reference(boxes, scores, labels.tolist(), **args)
    assert keep.tolist() == ref_keep
    assert torch.allclose(kept, torch.tensor(ref_kept), atol=1e-6)
    assert torch.allclose(merged, ref_merged, atol=1e-4)
    assert not torch.allclose(merged, boxes[keep], atol=1e-2)  # merging moved boxes


def test_merging_pulls_a_pick_towards_its_near_duplicate_only():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]])
    keep, _, merged = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), merge_exponent=10)
    assert keep.tolist()[:2] == [0, 2]
    decay = math.exp(-(90 / 110) ** 2 / 0.5)
    w = 0.8 * (1 - decay) ** 10
    assert merged[0].tolist() == pytest.approx([w / (0.9 + w), 0, 10 + w / (0.9 + w), 10], abs=1e-5)
    assert merged[1].tolist() == pytest.approx([30, 30, 40, 40])  # nothing overlaps it
    with pytest.raises(ValueError, match="merge_exponent"):
        soft_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), merge_exponent=0)
