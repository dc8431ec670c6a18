"""Models: backbones, necks, heads, losses and the detectors that wire them."""
from zoo.models import backbones, detectors, heads, losses, necks  # noqa: F401  (registration)
