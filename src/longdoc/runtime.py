"""Where and how models run: the device, the bf16 autocast decision, length-sorted batching, and
which process of a distributed run is the main one.

Encoders run under bf16 autocast where the hardware has bf16 units (a CUDA device that supports
it, or a CPU with AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32. The
environment variable LONGDOC_BF16 forces the choice (0: never, 1: always).
"""

from __future__ import annotations

import contextlib
import os

import torch

DEFAULT_BATCH_TOKENS = 16384  # padded tokens per encoder call


def default_device() -> str:
    """"cuda" when a CUDA device is visible, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    """True where this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def bf16_autocast_default(device: torch.device | str) -> bool:
    """Whether longdoc runs encoders under bf16 autocast by default: where the hardware has bf16
    units, unless the environment variable LONGDOC_BF16 says 0 (never) or 1 (always)."""
    forced = os.environ.get("LONGDOC_BF16", "").strip().lower()
    if forced in ("0", "1", "false", "true", "no", "yes"):
        return forced in ("1", "true", "yes")
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def autocast_context(device: torch.device | str, bf16: bool):
    device = torch.device(device)
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def length_sorted_batches(lengths: list[int], batch_tokens: int, min_fill: float = 0.0) -> list[list[int]]:
    """Indices grouped into batches, longest first, each within `batch_tokens` padded tokens; with
    `min_fill`, an item shorter than that share of its batch's longest starts a new batch (so that a
    short last window of a long document is not padded to a full one)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        if current and (longest_if_added * (len(current) + 1) > batch_tokens
                        or lengths[index] < min_fill * longest_if_added):
            batches.append(current)
            current, longest_if_added = [], lengths[index]
        current.append(index)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (torch.distributed, or the RANK
    variable a launcher sets before it is initialised): only the main process writes files."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0
