"""Evaluators with one interface (reset / process / evaluate / plot / format_table).

Importing this package registers every evaluator in ``zoo.registry.EVALUATORS``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zoo.evaluation.base import Evaluator
from zoo.evaluation.coco import COCOEvaluator
from zoo.evaluation.errors import ErrorBreakdown
from zoo.evaluation.proposal_recall import ProposalRecallEvaluator
from zoo.evaluation.voc import VOCEvaluator
from zoo.registry import EVALUATORS


def build_evaluators(
    cfg: Mapping[str, Any] | Sequence[Mapping[str, Any]], class_names: Sequence[str]
) -> list[Evaluator]:
    """Build from one node ``{type: voc, ...}`` or a list of nodes. ``class_names`` is wired in, so
    it must not appear in the nodes. The first evaluator's ``primary_metric`` is the natural
    choice for picking the best checkpoint."""
    nodes = [cfg] if isinstance(cfg, Mapping) else list(cfg)
    if not nodes:
        raise ValueError("no evaluator configured")
    names = [str(n) for n in class_names]  # a ListConfig from Hydra becomes plain strings
    return [EVALUATORS.build(node, class_names=names) for node in nodes]


__all__ = ["COCOEvaluator", "ErrorBreakdown", "Evaluator", "ProposalRecallEvaluator", "VOCEvaluator",
           "build_evaluators"]
