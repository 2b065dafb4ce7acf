"""`python -m longdoc.cli`: the `longdoc` command."""

import sys

from . import main

sys.exit(main())
