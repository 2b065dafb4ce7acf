"""Moved to `longdoc.datasets.manpages`: this name imports the same module, for existing callers."""

import sys

from ..datasets import manpages as _module

sys.modules[__name__] = _module

if __name__ == "__main__":
    sys.exit(_module.main())
