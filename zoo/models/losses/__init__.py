"""Losses. Each returns a dict of named scalar terms."""
from zoo.models.losses import multibox  # noqa: F401  (registration)
