"""What a training needs when it runs as several processes (started by `torchrun`, `accelerate launch`
or `longdoc train --nproc-per-node N`): one process group, rank 0 doing the shared work first, the
other ranks quiet, and a check that every rank trains on the same data.

    prepare(device)               # each GPU process its own device; ranks other than 0 quiet
    start(device)                 # the process group (gloo on CPU, NCCL on CUDA), once
    check_same_data(train, dev, settings)   # a ValueError on every rank when ranks read different data
    with main_process_first():    # rank 0 fills the segment-vector cache, then the others read it
        ...
    wait_for_everyone()

Outside a distributed run (no WORLD_SIZE above 1 in the environment) every helper does nothing,
so `train()` calls them unconditionally. The Trainer (through `accelerate`) reuses the process
group initialised here instead of making its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
from contextlib import contextmanager

from ..runtime import is_main_process

logger = logging.getLogger(__name__)

PATH_OPTIONS = ("cache_dir",)  # settings that may differ between machines without changing the training


def world_size() -> int:
    """Processes in this run (1 outside a distributed run), as the launcher announced them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_distributed() -> bool:
    return world_size() > 1


def backend(device: str) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device == "cuda" else "gloo"


def prepare(device: str) -> None:
    """Before anything is built: give each GPU process its own device, and keep the ranks other than 0
    quiet (the launcher's RANK says which this is; the process group starts later, in `start`)."""
    if not is_distributed():
        return
    if device == "cuda":
        import torch

        # "cuda" means this process's GPU from here on (the model is moved there before the Trainer runs)
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not is_main_process():
        quiet_this_process()


def start(device: str) -> None:
    """Join the process group of a distributed run (once: a later call, or one made by accelerate, is
    kept): gloo between CPU processes, NCCL between GPUs."""
    if not is_distributed():
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend(device))


def quiet_this_process() -> None:
    """Warnings and errors only, and no progress bars: rank 0 speaks for the run."""
    from transformers.utils import logging as transformers_logging
    from tqdm import std

    logging.getLogger("longdoc").setLevel(logging.WARNING)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if not getattr(std.tqdm.__init__, "longdoc_silenced", False):
        # our bars pass disable=False explicitly, which TQDM_DISABLE (read at import) cannot override
        original = std.tqdm.__init__

        def silenced(self, *args, **kwargs):
            kwargs["disable"] = True
            original(self, *args, **kwargs)

        silenced.longdoc_silenced = True
        std.tqdm.__init__ = silenced


def wait_for_everyone() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (the segment-vector cache filled), the other ranks after it, so that
    they find its files instead of writing the same ones at once."""
    if not is_distributed():
        yield
        return
    main = is_main_process()
    if not main:
        wait_for_everyone()
    try:
        yield
    finally:
        if main:
            wait_for_everyone()


# --- every rank must train on the same data -----------------------------------------------------


def fingerprint(value, leave_out: tuple[str, ...] = ()) -> str:
    """A digest of examples or settings that ignores where they were read from (a record's `source`,
    "file:line", names a path that may differ from machine to machine) and the dictionary keys
    `leave_out`, at any depth."""

    def plain(item):
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item) if f.name != "source"}
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items() if k not in leave_out}
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        if callable(item):  # a hook (a search's pruning): its name, not its address
            return getattr(item, "__qualname__", type(item).__name__)
        return item

    text = json.dumps(plain(value), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_fingerprints(train: list, dev: list, settings: dict) -> dict:
    """What each rank compares: its training examples, dev examples and training settings."""
    return {"training data": fingerprint(train), "dev data": fingerprint(dev),
            "settings": fingerprint(settings, leave_out=PATH_OPTIONS)}


def disagreements(per_rank: list[dict]) -> list[str]:
    """One sentence per thing the ranks disagree on, naming which ranks read what ([] when all agree).
    `per_rank[r]` is rank r's {"host": ..., "fingerprints": data_fingerprints(...)}."""
    problems = []
    for what in per_rank[0]["fingerprints"]:
        groups: dict[str, list[int]] = {}
        for index, report in enumerate(per_rank):
            groups.setdefault(report["fingerprints"][what], []).append(index)
        if len(groups) > 1:
            parts = []
            for ranks in groups.values():
                hosts = sorted({per_rank[r]["host"] for r in ranks})
                parts.append(f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} (on {', '.join(hosts)})")
            problems.append(f"{what}: " + " / ".join(parts) + " each read their own")
    return problems


def check_same_data(train: list, dev: list, settings: dict) -> None:
    """Raise a ValueError on every rank when the ranks read different examples or settings: DDP would
    average the gradients of different tasks (or hang on different step counts) without saying so."""
    if not is_distributed():
        return
    import torch.distributed as dist

    mine = {"host": socket.gethostname(), "fingerprints": data_fingerprints(train, dev, settings)}
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, mine)
    problems = disagreements(per_rank)
    if problems:
        raise ValueError(
            "the processes of this distributed run did not read the same data: " + "; ".join(problems) + ". Every "
            "node must run the same command on identical files (copy them to each machine, or read them from a "
            "shared folder) with the same options"
        )
