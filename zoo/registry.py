"""One registry class, one instance per component kind.

A config node ``{type: name, key: value, ...}`` builds the component registered under ``name``
with the remaining keys as keyword arguments. Unknown names and unknown keys fail with the
choices listed, so a typo in a config is caught when the model is built, not deep in training.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A config node does not describe a buildable component."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable], Callable]:
        def add(obj: Callable) -> Callable:
            key = name or obj.__name__
            if key in self._entries and self._entries[key] is not obj:
                raise KeyError(f"{self.kind} '{key}' is registered twice")
            self._entries[key] = obj
            return obj

        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} type '{name}'; known {self.kind} types: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, cfg: Mapping[str, Any] | None, **extra: Any) -> Any:
        """Build from ``{type: name, **kwargs}``; ``extra`` holds values wired in by the caller
        (channels, strides, class count) and wins over nothing: a clash is a config error."""
        cfg = _to_dict(cfg, self.kind)
        if not cfg or "type" not in cfg:
            raise ConfigError(f"a {self.kind} config needs a 'type' key; got {cfg!r}")
        name = cfg.pop("type")
        factory = self.get(name)
        clash = set(cfg) & set(extra)
        if clash:
            raise ConfigError(
                f"{self.kind} '{name}': key(s) {sorted(clash)} are wired automatically; remove them from the config"
            )
        kwargs = {**cfg, **extra}
        _check_keys(self.kind, name, factory, kwargs)
        return factory(**kwargs)


def _to_dict(cfg: Any, kind: str = "component") -> dict[str, Any]:
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a {kind} config must be a mapping like {{type: <name>, ...}}, got {cfg!r}")
    return dict(cfg)


def _check_keys(kind: str, name: str, factory: Callable, kwargs: Mapping[str, Any]) -> None:
    sig = inspect.signature(factory)
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"{kind} '{name}' got unknown key(s) {unknown}; accepted keys: {', '.join(accepted)}")
    missing = [
        k for k, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and k not in kwargs
    ]
    if missing:
        raise ConfigError(f"{kind} '{name}' is missing required key(s) {missing}")


BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
LOSSES = Registry("loss")
SAMPLERS = Registry("sampler")
MATCHERS = Registry("matcher")
CODERS = Registry("coder")
PRIORS = Registry("prior generator")
DETECTORS = Registry("detector")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
EVALUATORS = Registry("evaluator")
MERGES = Registry("merge")  # how test-time-augmentation views' detections are combined

ALL_REGISTRIES = {
    "backbones": BACKBONES, "necks": NECKS, "heads": HEADS, "losses": LOSSES, "samplers": SAMPLERS,
    "matchers": MATCHERS, "coders": CODERS, "priors": PRIORS, "detectors": DETECTORS,
    "datasets": DATASETS, "transforms": TRANSFORMS, "evaluators": EVALUATORS, "merges": MERGES,
}
