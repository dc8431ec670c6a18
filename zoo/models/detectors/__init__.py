"""Detectors: wire registered components and keep the forward contract of DESIGN.md."""
from zoo.models.detectors import cornernet, refinedet, single_stage, two_stage  # noqa: F401  (registration)
from zoo.models.detectors.build import build_detector, takes_proposals

__all__ = ["build_detector", "takes_proposals"]
