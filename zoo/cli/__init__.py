"""Console entry points: thin Hydra wrappers around zoo.engine."""
from pathlib import Path

import zoo.config  # noqa: F401  (registers the config schemas with Hydra)

# conf/ sits beside the package in the source tree (installed with `pip install -e .`).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
