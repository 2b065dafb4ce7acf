"""Moved to `longdoc.datasets.dataset_files`: this name imports the same module, for existing callers."""

import sys

from ..datasets import dataset_files as _module

sys.modules[__name__] = _module
