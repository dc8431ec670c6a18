"""Task components shared by detectors: prior generators, matchers, box coders."""
from zoo.task import assign, coders, matchers, priors  # noqa: F401  (registration)
