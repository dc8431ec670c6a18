"""A run's model and evaluators built once on the meta device before any data is read: a typo in their
config nodes, or a weights file that is not there, fails in well under a second instead of after the
data sets load (tens of seconds for COCO)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from omegaconf import DictConfig

from zoo.config import model_node
from zoo.evaluation import build_evaluators
from zoo.models.detectors import build_detector


def check_components(model_cfg: DictConfig | None, evaluator_cfg: Mapping | None,
                     class_names: Sequence[str] | None = None) -> None:
    """Build (and drop) the detector of ``model_cfg`` on the meta device, where parameters take no memory
    and weights files are only looked for, and the evaluators of ``evaluator_cfg``; either may be None.
    ``class_names``: the data config's declared classes, or None (a data set that reads them from its
    annotations): a stand-in class then, since no component's validity depends on the count."""
    names = [str(name) for name in class_names] if class_names else ["object"]
    if model_cfg is not None:
        with torch.device("meta"):
            build_detector(model_node(model_cfg), num_classes=len(names))
    if evaluator_cfg is not None:
        build_evaluators(list(evaluator_cfg.values()), names)
