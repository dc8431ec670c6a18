"""Another library's published detector as a zoo checkpoint: the Python API behind ``zoo-import``.

    info = import_checkpoint("torchvision", "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
                             "frcnn.pt")

The checkpoint holds the weights renamed to zoo's model, a config that sets the source's test-time conventions (input
normalisation and resizing, anchors, RoI pooling, thresholds) and the class names, so zoo-eval, zoo-predict,
zoo-export and ``model.init_from`` take it as they take one zoo-train wrote."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from zoo.config.compose import compose_config
from zoo.config.run import RunConfig
from zoo.engine.checkpoint import check_finite, save_checkpoint
from zoo.models.detectors import build_detector
from zoo.models.imports import check_fit, find_import


def import_config(source: str, model: str, data_root: str | None = None):
    """The composed config of an imported model: zoo's ``base`` model with the source's conventions, on the data set
    whose classes it has (its root ``data_root``, or a placeholder that zoo-eval's ``data_root=`` replaces)."""
    spec = find_import(source, model)
    root = data_root or f"/path/to/{spec.data}"
    return compose_config("train", [f"model={spec.base}", f"data={spec.data}", f"data.root={root}", *spec.overrides])


def import_checkpoint(source: str, model: str, weights: str | Path, out: str | Path,
                      data_root: str | None = None) -> dict[str, Any]:
    """Read ``weights`` (the source's own file), rename and check every tensor against zoo's model, write ``out``.
    Returns what was written: file, model, classes, tensors and seconds."""
    start = time.perf_counter()
    spec = find_import(source, model)
    cfg = import_config(source, model, data_root)
    run = RunConfig.from_composed(cfg)
    detector = build_detector(run.detector, num_classes=len(spec.classes))
    where = f"weights file '{weights}' ({source} {model})"
    state = spec.convert(spec.read(str(weights)), where)
    check_fit(state, detector.state_dict(), where)
    detector.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent (check_fit)
    full = detector.state_dict()
    check_finite({"model": full}, weights)
    save_checkpoint({"model": full, "config": OmegaConf.to_yaml(cfg, resolve=True), "class_names": list(spec.classes),
                     "step": 0, "imported": {"source": source, "model": model, "weights": str(Path(weights).resolve()),
                                             "published": spec.published}}, out)
    return {"file": str(out), "model": run.name, "classes": len(spec.classes), "tensors": len(state),
            "seconds": round(time.perf_counter() - start, 1), "data": spec.data}
