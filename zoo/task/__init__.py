"""Task components shared by detectors: prior generators, matchers, samplers, box coders."""
from zoo.task import assign, coders, matchers, priors, samplers  # noqa: F401  (registration)
