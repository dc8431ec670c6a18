"""Heads: per-level predictions, flattened to (B, anchors, K) in the prior generators' order."""
from zoo.models.heads import box_features, corner_head, roi_box_head, rpn, ssd_head  # noqa: F401  (registration)
