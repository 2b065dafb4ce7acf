"""Moved to `longdoc.datasets.man_sections`: this name imports the same module, for existing callers."""

import sys

from ..datasets import man_sections as _module

sys.modules[__name__] = _module

if __name__ == "__main__":
    sys.exit(_module.main())
