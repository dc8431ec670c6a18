"""Small helpers at the bottom of the package: atomic file writes, where a figure comes from."""
