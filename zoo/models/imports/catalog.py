"""The importable models: for each (source library, model name), the zoo model it becomes, the conventions its config
must set to behave as the source does at test time, how its file is read and renamed, and its class names."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from zoo.models.imports.keys import ImportError_

Convert = Callable[[Mapping[str, torch.Tensor], str], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ImportSpec:
    """``base``: zoo's model config it becomes; ``overrides``: Hydra overrides on top (the source's conventions);
    ``data``: the data config its class names are those of; ``read``: path -> the file's tensors; ``convert``: those
    tensors (and the file's name, for errors) -> zoo's state dict; ``published``: the file and the figure its authors
    report; ``checked``: how this import is tested here."""
    source: str
    model: str
    base: str
    overrides: tuple[str, ...]
    data: str
    classes: tuple[str, ...]
    read: Callable[[str], dict[str, torch.Tensor]]
    convert: Convert
    published: str
    checked: str
    notes: tuple[str, ...] = field(default=())


IMPORTS: dict[tuple[str, str], ImportSpec] = {}

# zoo-eval's batch for keep-ratio models: one image, as the libraries evaluate (a batch pads its images to the largest,
# which moves the anchors' grid); zoo-eval's batch_size= sets another
ONE_PER_BATCH = "trainer.batch_size=1"
# What torchvision's and MMDetection's Faster R-CNN R50-FPN share: frozen BatchNorm, RoIAlign, anchors on cell corners
# listed ratio by ratio, ImageNet's normalisation, one image per evaluation batch
FPN_ON_CORNERS = ("model.backbone.norm=frozen_bn", "model.roi_head.pooler.type=roi_align",
                  "++model.rpn.priors.centre_offset=0.0", "++model.rpn.priors.order=ratio_major",
                  "++model.input_mean=[123.675, 116.28, 103.53]", "++model.input_std=[58.395, 57.12, 57.375]",
                  ONE_PER_BATCH)


def register(spec: ImportSpec) -> ImportSpec:
    IMPORTS[(spec.source, spec.model)] = spec
    return spec


def find_import(source: str, model: str) -> ImportSpec:
    """The spec of ``model`` from ``source``; an unknown one fails listing what there is."""
    if (source, model) in IMPORTS:
        return IMPORTS[(source, model)]
    sources = sorted({s for s, _ in IMPORTS})
    if source not in sources:
        raise ImportError_(f"source '{source}' is not known; choose one of {sources}")
    models = sorted(m for s, m in IMPORTS if s == source)
    raise ImportError_(f"{source} has no model '{model}' here; choose one of {models}")
