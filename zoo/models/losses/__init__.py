"""Losses. Each returns a dict of named scalar terms."""
from zoo.models.losses import corner, multibox  # noqa: F401  (registration)
