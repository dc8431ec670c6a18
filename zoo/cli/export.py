"""`zoo-export checkpoint=... [format=pt2|onnx|openvino] [int8=true]`: a trained detector as one file (a torch.export
program, an ONNX graph or OpenVINO IR), checked against the eager model before it is written."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("export")
@hydra.main(config_path=CONF_DIR, config_name="export", version_base="1.3")
@reports_bad_input("zoo-export")
def main(cfg: DictConfig) -> None:
    from zoo.apis.export import export_checkpoint
    from zoo.components import load_components

    load_components()
    info = export_checkpoint(cfg)
    shape = "x".join(map(str, info["input_shape"]))
    kind = {"pt2": "a torch.export program", "onnx": "an ONNX file", "openvino": "OpenVINO IR"}[info["format"]]
    if info["int8"]:
        checked = f"int8 (calibrated on {info['calibration_images']} training images): {info['int8_check']}"
    else:
        checked = f"it reproduces the model on {info['checked_on']}"
    print(f"exported in {info['export_seconds']} s, input {shape}, as {kind}; {checked}: {info['file']} "
          f"(what goes in and out: {Path(info['file']).with_suffix('.json')})")
    if info["note"]:
        print(f"note: {info['note']}")


if __name__ == "__main__":
    main()
