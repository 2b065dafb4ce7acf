"""Short -> long checkpoint conversion: one entry point, key maps as data, self-verification.

    from longdoc.convert import convert
    report = convert("path/to/bert", "out/bert-4096", to="longformer", max_length=4096)
    print(report)  # what was built, and how closely it reproduces the source
"""

from .conversion import ConversionReport, convert
from .longformer import LongformerTarget
from .hat import HATTarget
from .lsg import LSGTarget
from .positions import extend_position_table
from .sources import SOURCE_ARCHITECTURES, SourceArchitecture, source_architecture, supported_model_types
from .targets import ConversionTarget, available_targets, get_target, register_target
from .verification import VerificationError, VerificationReport, verify

register_target(LongformerTarget())
register_target(LSGTarget())
register_target(HATTarget())

__all__ = [
    "ConversionReport",
    "ConversionTarget",
    "HATTarget",
    "LongformerTarget",
    "LSGTarget",
    "SOURCE_ARCHITECTURES",
    "SourceArchitecture",
    "VerificationError",
    "VerificationReport",
    "available_targets",
    "convert",
    "extend_position_table",
    "get_target",
    "register_target",
    "source_architecture",
    "supported_model_types",
    "verify",
]
