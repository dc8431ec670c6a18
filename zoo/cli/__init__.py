"""Console entry points: thin Hydra wrappers around zoo.engine."""
import functools
import os
import sys

from omegaconf.errors import MissingMandatoryValue

import zoo.config  # noqa: F401  (registers the config schemas with Hydra)
from zoo.config.paths import CONF_DIR  # noqa: F401  (the commands' config_path)
from zoo.utils.errors import WorkerDied
from zoo.utils.optional import MissingPackage


def reports_bad_input(command: str):
    """A command's bad input (a ValueError: wrong config values, bad data, files that are not there) or a missing
    optional package ends it with one line naming the problem and exit status 2, not a traceback;
    HYDRA_FULL_ERROR=1 shows the traceback."""
    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except (ValueError, FileNotFoundError, MissingMandatoryValue) as err:
                _stop(command, _message(err))
            except (MissingPackage, WorkerDied) as err:  # a package the command needs, a worker process lost: which
                _stop(command, str(err))
            except KeyboardInterrupt as err:  # Ctrl-C: what was kept and how to go on, not a traceback
                print(f"{command}: {err or 'interrupted'}", file=sys.stderr)
                sys.exit(130)
            except RuntimeError as err:
                if "DataLoader worker" not in str(err):
                    raise
                _stop(command, f"{str(err).splitlines()[0].strip().rstrip('.')}: a data-loader worker died (out of memory, or killed); "
                               "lower data.num_workers, or turn data.cache off")
        return run
    return wrap


def suggests_keys(config_name: str):
    """Around a Hydra entry point: when Hydra refuses the command line (exit status 1), name the real key nearest to
    each misspelt one (``trainer.max_epoch`` -> ``trainer.max_epochs``), read from the config as composed without
    the dotted overrides. Hydra's own message stays; this adds one line under it."""
    def wrap(hydra_main):
        @functools.wraps(hydra_main)
        def run(*args, **kwargs):
            try:
                return hydra_main(*args, **kwargs)
            except SystemExit as stop:
                if stop.code == 1:
                    for hint in misspelt_keys(config_name, sys.argv[1:]):
                        print(hint, file=sys.stderr)
                raise
        return run
    return wrap


def misspelt_keys(config_name: str, argv: list[str]) -> list[str]:
    """``did you mean`` lines for the overrides in ``argv`` that set a key the composed config does not have."""
    import difflib

    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, OmegaConf

    overrides = [a for a in argv if "=" in a and not a.startswith(("-", "hydra.", "hydra/"))]
    groups = [o for o in overrides if "." not in o.split("=", 1)[0] and not o.startswith(("+", "~"))]
    try:
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose(config_name, overrides=groups)
    except Exception:  # a bad group choice: Hydra's message already lists the options
        return []
    hints = []
    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~")) or "." not in key:
            continue
        parent_key, leaf = key.rsplit(".", 1)
        parent = OmegaConf.select(cfg, parent_key, default=None)
        if isinstance(parent, DictConfig) and leaf not in parent:
            close = difflib.get_close_matches(leaf, [str(k) for k in parent.keys()], n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {parent_key}.{close[0]}? ('{key}' is not a key of the config)")
    return hints


def _stop(command: str, message: str) -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise
    print(f"{command}: error: {message}\n(HYDRA_FULL_ERROR=1 shows where it was raised)", file=sys.stderr)
    sys.exit(2)


def _message(err: Exception) -> str:
    """The error's own words: a missing required option named as the override that gives it, and an error raised
    in a data-loader worker without the worker's traceback, which torch writes into the message."""
    if isinstance(err, MissingMandatoryValue):
        key = getattr(err, "full_key", None) or "?"
        return f"'{key}' is required: pass {key}=<value>"
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last  # "zoo.data.errors.DataError: <its message>"
    return text
