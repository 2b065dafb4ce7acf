"""Moved to `longdoc.datasets.package_sets`: this name imports the same module, for existing callers."""

import sys

from ..datasets import package_sets as _module

sys.modules[__name__] = _module
