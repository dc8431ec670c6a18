"""The PASCAL VOC detection metric as pure numpy functions.

Matching follows the VOC devkit (VOCevaldet.m): each detection looks at the ground truth of its
class in its image with the highest IoU, *whether or not* that box is already taken or ignored:
  - IoU >= threshold and the box is ignored (difficult): the detection is neither TP nor FP;
  - IoU >= threshold and the box is free: TP, and the box is taken;
  - IoU >= threshold and the box is taken by a higher-scored detection: FP (a duplicate);
  - otherwise: FP.
Because the best box never depends on which boxes are taken, the sequential devkit loop reduces to
"the first detection in score order that claims a box wins it", which vectorises.

Boxes are continuous coordinates (area = (x2 - x1) * (y2 - y1)), not the devkit's +1 pixel
convention, so a box matches itself with IoU 1 at any size and IoUs are those of COCO.
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

NO_MATCH = -1


def match_to_ground_truth(
    det_boxes: np.ndarray, det_labels: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """For the detections of one image: the index of the same-class ground truth with the highest
    IoU when that IoU is >= ``iou_threshold`` (as in the devkit and COCO), else ``NO_MATCH``.
    Ties in IoU go to the lower ground-truth index."""
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return np.full(len(det_boxes), NO_MATCH, np.int64)
    iou = box_iou(torch.from_numpy(det_boxes), torch.from_numpy(gt_boxes)).numpy()
    iou = np.nan_to_num(iou, nan=0.0)  # degenerate boxes (zero union) overlap nothing
    iou[det_labels[:, None] != gt_labels[None, :]] = -1.0
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(len(best)), best] >= iou_threshold, best, NO_MATCH)


def true_positives(scores: np.ndarray, matched_gt: np.ndarray, gt_ignore: np.ndarray) -> np.ndarray:
    """Label the detections of one class, all images together.

    ``matched_gt`` indexes ``gt_ignore`` (ground truth numbered across images) or is ``NO_MATCH``.
    Returns, in descending score order (a stable sort: ties keep the input order), whether each
    detection is a TP (else an FP). Detections on ignored ground truth are neither, so they are
    dropped; keeping them with tp = fp = 0, as the devkit does, only repeats points of the curve.
    """
    on_ignored, first_claim = claims(matched_gt[np.argsort(-scores, kind="stable")], gt_ignore)
    return first_claim[~on_ignored]


def claims(matched: np.ndarray, gt_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detections in descending score order, each with its matched ground truth (or ``NO_MATCH``):
    which land on an ignored box, and which are the first claim on a counted box (a true positive;
    later claims on it are duplicates)."""
    hit = matched != NO_MATCH
    on_ignored = np.zeros(len(matched), bool)
    on_ignored[hit] = gt_ignore[matched[hit]]
    counted = np.flatnonzero(hit & ~on_ignored)
    _, first = np.unique(matched[counted], return_index=True)
    first_claim = np.zeros(len(matched), bool)
    first_claim[counted[first]] = True
    return on_ignored, first_claim


def precision_recall(is_tp: np.ndarray, num_positives: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative precision and recall down a score-sorted list of detections."""
    tp = np.cumsum(is_tp)
    precision = tp / np.arange(1, len(is_tp) + 1)
    recall = tp / num_positives if num_positives else np.full(len(tp), np.nan)
    return precision, recall


def average_precision(precision: np.ndarray, recall: np.ndarray, use_07_metric: bool) -> float:
    """VOC2007 11-point interpolated AP, or (VOC2010+) the area under the monotone envelope."""
    if use_07_metric:
        # The highest precision at recall >= t, for t = 0, 0.1, ..., 1 (0 where recall never gets there).
        # t as the Python scorers the papers' code and MMDetection use build it, np.arange(0, 1.1, 0.1): its 0.3,
        # 0.6 and 0.7 lie just above 3/10, 6/10 and 7/10, so a recall of exactly 3/10 does not reach t = 0.3.
        # The MATLAB devkit's 0:0.1:1 has exact 0.6 and 0.7 (its 0.3 is the same), so on a class whose positives
        # are a multiple of 5 or 10 its AP can differ from these scorers' (by about 1e-4 on real data).
        t = np.arange(0.0, 1.1, 0.1)
        reached = recall[None, :] >= t[:, None]
        return float(np.where(reached, precision[None, :], 0.0).max(axis=1, initial=0.0).mean())
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(mpre[::-1])[::-1]  # best precision at this recall or beyond
    return float(np.sum(np.diff(mrec) * envelope[1:]))
