"""Test-time augmentation: run a detector on several views of each batch and merge the detections."""
from zoo.tta import merges  # noqa: F401  (registration)
from zoo.tta.wrapper import TTADetector, build_tta, parse_tta

__all__ = ["TTADetector", "build_tta", "parse_tta"]
