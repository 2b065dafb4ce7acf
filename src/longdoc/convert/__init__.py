"""Short -> long checkpoint conversion: one entry point, key maps as data, self-verification.

    from longdoc.convert import convert
    report = convert("path/to/bert", "out/bert-4096", to="longformer", max_length=4096)
    print(report)  # what was built, and how closely it reproduces the source

The names below are imported on first use, so that `longdoc.convert.registry` and
`longdoc.convert.sources` (what the command line lists) load without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ConversionReport": "conversion", "convert": "conversion",
    "LongformerTarget": "longformer", "LSGTarget": "lsg", "HATTarget": "hat",
    "extend_position_table": "positions",
    "SOURCE_ARCHITECTURES": "sources", "SourceArchitecture": "sources", "source_architecture": "sources",
    "supported_model_types": "sources",
    "available_targets": "registry", "get_target": "registry", "register_target": "registry",
    "ConversionTarget": "targets",
    "VerificationError": "verification", "VerificationReport": "verification", "verify": "verification",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
