"""zoo: a configurable object-detection zoo built from registered components."""
__version__ = "0.1.0"
