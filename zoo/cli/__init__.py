"""Console entry points: thin Hydra wrappers around zoo.engine."""
import functools
import os
import sys

from omegaconf.errors import MissingMandatoryValue

import zoo.config  # noqa: F401  (registers the config schemas with Hydra)
from zoo.config.paths import CONF_DIR  # noqa: F401  (the commands' config_path)


def reports_bad_input(command: str):
    """A command's bad input (a ValueError: wrong config values, bad data, files that are not there) ends it with
    one line naming the problem and exit status 2, not a traceback; HYDRA_FULL_ERROR=1 shows the traceback."""
    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except (ValueError, FileNotFoundError, MissingMandatoryValue) as err:
                _stop(command, _message(err))
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
