"""The conversion targets `convert()` and `verify()` look up by name (`--to`). The built-in ones are
listed here without being imported (the command line lists them before torch is loaded); each is
imported on first use. Other families plug in with `register_target()`."""

from __future__ import annotations

import importlib

# name -> ("module:Class", description)
BUILT_IN = {
    "longformer": ("longdoc.convert.longformer:LongformerTarget",
                   "sliding-window + global attention, longdoc.LongformerModel"),
    "lsg": ("longdoc.convert.lsg:LSGTarget",
            "local + sparse + global attention, longdoc.LSG* models (BERT, RoBERTa, MPNet, BART)"),
    "hat": ("longdoc.convert.hat:HATTarget",
            "hierarchical attention: segment-wise + cross-segment encoders, longdoc.HAT* models"),
}
_TARGETS: dict = {}  # name -> ConversionTarget, once imported or registered


def register_target(target) -> None:
    """Make a `ConversionTarget` available to `convert(..., to=target.name)`."""
    _TARGETS[target.name] = target


def available_targets() -> list[str]:
    return sorted(set(BUILT_IN) | set(_TARGETS))


def target_description(name: str) -> str:
    return _TARGETS[name].description if name in _TARGETS else BUILT_IN[name][1]


def get_target(name: str):
    if name not in _TARGETS and name in BUILT_IN:
        module, _, cls = BUILT_IN[name][0].partition(":")
        register_target(getattr(importlib.import_module(module), cls)())
    if name not in _TARGETS:
        raise ValueError(
            f"unknown conversion target {name!r}; available: "
            + ", ".join(f"{t} ({target_description(t)})" for t in available_targets())
        )
    return _TARGETS[name]
