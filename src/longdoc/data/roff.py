"""Moved to `longdoc.datasets.roff`: this name imports the same module, for existing callers."""

import sys

from ..datasets import roff as _module

sys.modules[__name__] = _module
