"""Heads: per-level predictions, flattened to (B, anchors, K) in the prior generators' order."""
from zoo.models.heads import ssd_head  # noqa: F401  (registration)
