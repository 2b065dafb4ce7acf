"""The errors longdoc raises on purpose, each with a message that says what was wrong and how to fix it.

- `DataError`: an input file (or a model folder) cannot be used as it is; the message names the
  file and line. A `ValueError`, so callers that catch bad values catch it too.
- `VerificationError`: a converted checkpoint does not reproduce its source.

Settings that cannot work (a flag a family does not take, a head kind a family cannot build) raise
plain `ValueError`s naming the setting and what to use instead.
"""


class DataError(ValueError):
    """A document file cannot be used as it is; the message names the file and line."""


class VerificationError(RuntimeError):
    """The converted model does not reproduce its source."""
