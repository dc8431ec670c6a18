"""`zoo-import source=<library> model=<name> weights=<file> out=<checkpoint>`: another library's published detector as
a zoo checkpoint (zoo.apis.import_model); `zoo-import list=true` lists what can be imported. The key=value options
are read against conf/import.yaml without Hydra: Hydra would take ``model=`` for zoo's model config group."""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input


def parse(argv: list[str]):
    """conf/import.yaml with ``argv``'s key=value pairs over it; an unknown key fails naming the nearest one."""
    defaults = OmegaConf.load(Path(CONF_DIR) / "import.yaml")
    for arg in argv:
        key = arg.split("=", 1)[0]
        if "=" not in arg:
            raise ValueError(f"'{arg}' is not key=value (e.g. source=torchvision)")
        if key not in defaults:
            close = difflib.get_close_matches(key, [str(k) for k in defaults], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; keys: {', '.join(map(str, defaults))}"
            raise ValueError(f"'{key}' is not an option of zoo-import{hint}")
    return OmegaConf.merge(defaults, OmegaConf.from_dotlist(argv))


@reports_bad_input("zoo-import")
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print((Path(CONF_DIR) / "import.yaml").read_text())
        return
    cfg = parse(argv)
    from zoo.apis.import_model import import_checkpoint
    from zoo.components import load_components
    from zoo.models.imports import IMPORTS

    if cfg.list:
        for (source, model), spec in sorted(IMPORTS.items()):
            print(f"source={source} model={model}  ->  zoo {spec.base}, {len(spec.classes)} {spec.data} classes; "
                  f"{spec.published}")
            for line in (f"checked: {spec.checked}", *spec.notes):
                print(f"    {line}")
        return
    missing = [key for key in ("source", "model", "weights", "out") if not cfg.get(key)]
    if missing:
        raise ValueError(f"give {', '.join(f'{k}=' for k in missing)} (zoo-import list=true names the models)")
    load_components()
    info = import_checkpoint(str(cfg.source), str(cfg.model), str(cfg.weights), str(cfg.out), cfg.data_root)
    print(f"imported {cfg.source} {cfg.model} as zoo {info['model']} ({info['tensors']} tensors, {info['classes']} "
          f"classes) in {info['seconds']} s: {info['file']}")
    root = "" if cfg.data_root else f" data_root=<your {info['data']} folder>"
    print(f"next: zoo-eval checkpoint={info['file']}{root}  |  zoo-predict checkpoint={info['file']} "
          f"inputs=<images>  |  zoo-train ... model.init_from={info['file']}")


if __name__ == "__main__":
    main()
