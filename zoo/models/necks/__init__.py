"""Necks: take backbone features, return features; declare ``out_channels`` and ``strides``."""
from zoo.models.necks import fpn, identity, ssd_extras, tcb  # noqa: F401  (registration)
