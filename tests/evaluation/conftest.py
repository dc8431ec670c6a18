import numpy as np
import pytest

CLASS_NAMES = ["circle", "square", "triangle", "star"]


def random_detection_set(seed: int = 0, num_images: int = 20):
    """Seeded ground truth and predictions: boxes from a few pixels to half the image (so COCO's
    small/medium/large ranges all occur), ~15% crowd/ignored boxes, jittered true detections,
    misclassified and background false positives, a few images without boxes or predictions."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for image_id in range(1, num_images + 1):
        height, width = 480, 640
        n = int(rng.integers(0, 9)) if image_id % 7 else 0
        size = np.exp(rng.uniform(np.log(6), np.log(320), (n, 1))) * rng.uniform(0.6, 1.4, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([width, height]) - size)
        boxes = np.hstack([xy, xy + size])
        labels = rng.integers(0, len(CLASS_NAMES), n)
        gts.append({"image_id": image_id, "boxes": boxes, "labels": labels, "ignore": rng.random(n) < 0.15,
                    "height": height, "width": width})
        if image_id % 9 == 0:
            continue  # ground truth without predictions
        found = rng.random(n) < 0.8
        jitter = rng.normal(0, 0.08, (n, 4)) * np.tile(size, 2)
        det_boxes = (boxes + jitter)[found]
        det_labels = np.where(rng.random(n) < 0.9, labels, rng.integers(0, len(CLASS_NAMES), n))[found]
        m = int(rng.integers(0, 5))
        bg_xy = rng.uniform(0, 500, (m, 2))
        bg_boxes = np.hstack([bg_xy, bg_xy + rng.uniform(8, 140, (m, 2))])
        preds.append({
            "image_id": image_id,
            "boxes": np.vstack([det_boxes, bg_boxes]),
            "scores": rng.random(len(det_boxes) + m),
            "labels": np.concatenate([det_labels, rng.integers(0, len(CLASS_NAMES), m)]),
        })
    return gts, preds


@pytest.fixture(scope="session")
def detection_set():
    """(class_names, ground_truths, predictions) on 20 seeded images."""
    return (CLASS_NAMES, *random_detection_set())
