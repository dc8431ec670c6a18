"""Where the configs live: conf/ beside the package in the source tree (installed with `pip install -e .`)."""
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # the checkout: relative data roots are taken from here
CONF_DIR = str(PROJECT / "conf")
