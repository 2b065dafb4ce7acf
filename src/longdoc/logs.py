"""Where progress goes. Library modules log to `logging.getLogger(__name__)` and print nothing, so a
Python caller decides what is shown; the command line and the demo call `show_progress()` to see
longdoc's INFO lines on stderr. `quiet_trainer` keeps `transformers`' Trainer from printing its
log dictionaries (`{'loss': ...}`) to stdout: the SaveBest callbacks say one line per epoch instead.
"""

from __future__ import annotations

import logging
import sys

_HANDLER_NAME = "longdoc-progress"


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream), through
    tqdm so that a progress bar on screen is redrawn below the line instead of being cut by it."""

    def emit(self, record):
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # as logging.StreamHandler: a broken stream must not stop the program
            self.handleError(record)


def show_progress(level: int = logging.INFO) -> None:
    """longdoc's log lines at `level` and above, as plain text on stderr (once, however often called)."""
    root = logging.getLogger("longdoc")
    root.setLevel(level)
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


def quiet_trainer(trainer) -> None:
    """Drop the Trainer's printing of log dictionaries; keep its progress bar (stderr) where it has one."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarWithoutLogs(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass  # ProgressCallback writes the log dictionary to stdout here

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarWithoutLogs)
