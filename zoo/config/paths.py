"""Where the configs live: conf/ beside the package in the source tree (installed with `pip install -e .`)."""
from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
