"""The harness every benchmark script shares.

* machine peak: the fastest dense matmul PyTorch reaches on this machine, per dtype, so that
  model FLOP utilisation (MFU = counted FLOPs / time / peak) is measured, not taken from a spec sheet;
* timing: one full-size warm-up per implementation, then rounds in A B B A order (drift and
  thermal effects hit every implementation alike), median seconds per call, with the spread
  (min / median / max) over the rounds;
* interference: the load average before and after each timing and the CPU time other processes
  took during it (`Interference`); a result is flagged "disturbed" when they, or the spread,
  say another process competed for the cores;
* the machine: CPU model, its bf16 flags (avx512_bf16, amx_bf16 / amx_tile), torch threads;
* peak memory: each measurement in a fresh process (`probe_memory_in_subprocesses`) so that
  allocator caches and earlier runs cannot hide or inflate the peak;
* FLOP counts for Longformer, LSG, BigBird and HAT encoders: useful FLOPs only, the same for every
  implementation;
* a run's start (`setup_run`: threads, the memory-probe child, the reproducing command);
* results: a table on stdout, CSV + Markdown companion + PNG plot under benchmarks/results/
  (`plot_comparisons` for ours-vs-peer pairs, `plot_impl_rows` for one row per implementation).

Ratios are always ours / peer: > 1 means faster for tokens/s, < 1 means smaller for memory.

Imports only the standard library, torch and psutil (matplotlib when plotting), so that a worker in
another virtualenv (bench_lsg.py's lsg-converter worker, lsg_peer.py) measures the same way.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import psutil
import torch
import torch.nn.functional as F

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MEMORY_PROBE_FLAG = "--memory-probe"
_PROBE_TAG = "MEMORY_PROBE_RESULT "
MIB = 2**20


# ---------------------------------------------------------------------------------------------
# Machine peak


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(dtype: torch.dtype, device: str = "cpu", min_seconds: float = 0.2,
                       max_size: int = 4096, repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best GFLOP/s of a square matmul in `dtype`.

    The size doubles from 256 until one product takes `min_seconds` (so slow dtypes, e.g. bf16
    on a CPU without bf16 instructions, do not take minutes). Both `torch.matmul` and
    `F.linear` are tried: on CPU they reach different kernels (bf16 linear goes to oneDNN
    and can be 10x faster than bf16 matmul), and the model uses both.
    """
    size = 256
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        kernels = (lambda: torch.matmul(a, b), lambda: F.linear(a, b))
        best = min(_best_time(kernel, device, 1, clock) for kernel in kernels)
        if best >= min_seconds or size >= max_size:
            break
        size *= 2
    best = min(_best_time(kernel, device, repeats, clock) for kernel in kernels)
    return 2 * size**3 / best / 1e9


def _best_time(fn: Callable[[], object], device: str, repeats: int, clock=time.perf_counter) -> float:
    fn()  # warm-up: kernel selection, page faults
    return min(_timed(fn, device, clock) for _ in range(repeats))


def _timed(fn: Callable[[], object], device: str, clock: Callable[[], float] = time.perf_counter) -> float:
    return timed_call(fn, device, clock)[0]


def timed_call(fn: Callable[[], object], device: str,
               clock: Callable[[], float] = time.perf_counter) -> tuple[float, object]:
    """(seconds, output) of one call, the device synchronised before and after. `clock` is wall time;
    `time.process_time` (this process's CPU time) where other processes share the cores: with one
    torch thread it leaves out the time the thread waited for a core (with more, it would count
    their spin-waits)."""
    _sync(device)
    start = clock()
    output = fn()
    _sync(device)
    return clock() - start, output


# ---------------------------------------------------------------------------------------------
# Timing


def time_interleaved(workloads: dict[str, Callable[[], object]], rounds: int, device: str = "cpu",
                     budget_s: float | None = None, samples_out: dict[str, list[float]] | None = None,
                     clock: Callable[[], float] = time.perf_counter) -> tuple[dict[str, float], int]:
    """Median seconds per call of each workload, and the number of rounds run.

    Each workload first runs once at full size (warm-up), then every round runs them in the
    order A B ... ... B A, so each gets 2 samples per round, spread evenly over the run.
    With `budget_s`, slow workloads get fewer rounds (at least one) so the timing stays within it.
    `samples_out`, when given, receives every workload's samples (for the spread); `clock` as in
    `timed_call`.
    """
    names = list(workloads)
    warm_up = sum(_timed(workloads[name], device, clock) for name in names)
    if budget_s is not None:
        rounds = max(1, min(rounds, int(budget_s // (2 * warm_up))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names + names[::-1]:
            samples[name].append(_timed(workloads[name], device, clock))
    if samples_out is not None:
        samples_out.update(samples)
    return {name: statistics.median(times) for name, times in samples.items()}, rounds


def time_interleaved_timers(timers: dict[str, Callable[[], float]], rounds: int,
                            budget_s: float | None = None) -> tuple[dict[str, float], int]:
    """`time_interleaved` for workloads that time themselves: each timer runs its workload once
    and returns the seconds that call took (e.g. measured inside a worker process, so that the
    messages to and from it stay outside the figure). Same warm-up, A B ... B A order and budget."""
    names = list(timers)
    warm_up = sum(timers[name]() for name in names)
    if budget_s is not None:
        rounds = max(1, min(rounds, int(budget_s // (2 * warm_up))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names + names[::-1]:
            samples[name].append(timers[name]())
    return {name: statistics.median(times) for name, times in samples.items()}, rounds


# ---------------------------------------------------------------------------------------------
# Interference: did another process compete for the cores during a timing?

DISTURBED_OTHER_CORES = 0.25  # other processes' average busy cores during a timing
DISTURBED_SPREAD = 0.15  # (max - min) / median of one side's samples


@dataclass
class Interference:
    """What else ran while one case was timed."""

    load_before: float  # 1-minute load average
    load_after: float
    other_cores: float  # CPU time of other processes (and VM steal) / wall time, in cores

    def describe(self) -> str:
        return f"load {self.load_before:.2f} -> {self.load_after:.2f}, others {self.other_cores:.2f} cores"


class InterferenceMonitor:
    """`with InterferenceMonitor() as monitor: ...` then `monitor.result`: the system's busy CPU
    time (psutil, /proc/stat: all but idle and iowait, steal included) minus this process's own,
    over the wall time of the block. The load average lags by a minute and counts this process
    too, so it is recorded but the flag uses the CPU time of the others."""

    def __enter__(self) -> "InterferenceMonitor":
        self.process = psutil.Process()
        self.load_before = os.getloadavg()[0]
        self.start = (time.perf_counter(), _busy_seconds(), _own_seconds(self.process))
        return self

    def __exit__(self, *exc) -> None:
        wall, busy, own = (end - begin for end, begin in zip(
            (time.perf_counter(), _busy_seconds(), _own_seconds(self.process)), self.start))
        self.result = Interference(self.load_before, os.getloadavg()[0], max(0.0, (busy - own) / wall))


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) \
        - getattr(times, "guest_nice", 0.0)  # guest time is already counted in user time


def _own_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def disturbed_reasons(samples: dict[str, list[float]], interference: Interference | None) -> list[str]:
    """Why a timing is not trustworthy (empty when it is): other processes busy, or a wide spread."""
    reasons = []
    if interference is not None and interference.other_cores > DISTURBED_OTHER_CORES:
        reasons.append(f"other processes used {interference.other_cores:.2f} cores")
    for name, times in samples.items():
        spread = relative_spread(times)
        if spread is not None and spread > DISTURBED_SPREAD:
            reasons.append(f"{name} spread {100 * spread:.0f}%")
    return reasons


def relative_spread(times: list[float] | None) -> float | None:
    """(max - min) / median of samples; None with fewer than two."""
    if not times or len(times) < 2:
        return None
    return (max(times) - min(times)) / statistics.median(times)


# ---------------------------------------------------------------------------------------------
# Peak memory


class _RssSampler(threading.Thread):
    """Samples RSS every millisecond: the fallback where the kernel's peak counter cannot be
    reset, and a cross-check where it can (the kernel updates its counters in batches).
    Torch kernels release the GIL, so sampling keeps going during long operations."""

    def __init__(self):
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)


def _reset_peak_rss() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vm_hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM missing from /proc/self/status")


def measure_peak_memory(workload: Callable[[], object], device: str = "cpu") -> dict:
    """Runs `workload` once; returns {"peak_bytes": peak growth over the memory held before the
    call, "method": how it was measured}. Call it in a fresh process, after set-up."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        workload()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "method": "cuda max_memory_allocated"}
    base = psutil.Process().memory_info().rss
    hwm_reset = _reset_peak_rss()
    sampler = _RssSampler()
    sampler.start()
    workload()
    sampler.stopped.set()
    sampler.join()
    peaks = {"sampled rss": sampler.peak}
    if hwm_reset:
        peaks["VmHWM"] = _vm_hwm_bytes()
    method = max(peaks, key=peaks.get)  # each source is a lower bound of the true peak
    return {"peak_bytes": peaks[method] - base, "method": method}


def fill_peak_memory(rows: list, probe, jobs: int = 1) -> str:
    """Run `probe(row)` (a dict with peak_bytes and method, or an Exception for a failed probe) for
    every row, `jobs` at a time; store each peak in row.measurement.peak_bytes and note failures
    on the row. Returns the memory methods used."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(probe, rows))
    methods = set()
    for row, result in zip(rows, results):
        if isinstance(result, Exception):
            row.note = "; ".join(x for x in (row.note, "memory probe failed") if x)
            continue
        row.measurement.peak_bytes = result["peak_bytes"]
        methods.add(result["method"])
    return ", ".join(sorted(methods)) or "no probe succeeded"


def probe_memory_in_subprocesses(script: str | Path, specs: list[dict], jobs: int = 2) -> list[dict]:
    """Runs `python script --memory-probe JSON` in a fresh interpreter for each spec, `jobs` at a
    time, and returns the dicts the script printed with `report_memory_probe`. Processes do not
    share memory, so side by side they leave each other's peaks unchanged; but run them after
    the timings, never during."""
    from concurrent.futures import ThreadPoolExecutor

    def probe(spec: dict) -> dict:
        cmd = [sys.executable, str(script), MEMORY_PROBE_FLAG, json.dumps(spec)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        for line in done.stdout.splitlines():
            if line.startswith(_PROBE_TAG):
                return json.loads(line[len(_PROBE_TAG):])
        raise RuntimeError(f"memory probe failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(probe, specs))


def report_memory_probe(result: dict) -> None:
    print(_PROBE_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# FLOP counts (forward pass; a training step counts TRAIN_STEP_FLOP_FACTOR times these)

TRAIN_STEP_FLOP_FACTOR = 3  # backward = 2 x forward (gradients w.r.t. inputs and weights)


def _global_rows_flops(tokens: int, hidden: int, heads: int, n_global: int) -> int:
    """The g global tokens' rows: q_global on those rows, then the cheaper of two exact ways to
    attend over all T keys: project every token's global key and value (4*T*h*h) and attend
    (4*g*T*h), or fold the projections into the queries (4*g*heads*T*h). Useful work is the
    cheaper one, whichever an implementation does."""
    projected = 2 * 2 * tokens * hidden * hidden + 2 * 2 * n_global * tokens * hidden
    folded = 2 * 2 * n_global * heads * tokens * hidden
    return 2 * n_global * hidden * hidden + min(projected, folded)


def _attention_flops(tokens: int, hidden: int, window: int, n_global: int) -> int:
    """Scores and weighted sum of the local rows: each over its 2w + 1 window keys and the g
    global keys (w = window // 2). Only useful FLOPs: neither the extra keys of a blocked or
    chunked kernel nor padding count."""
    one_sided = window // 2
    return 2 * 2 * tokens * (2 * one_sided + 1 + n_global) * hidden


def longformer_self_attention_flops(tokens: int, hidden: int, window: int, n_global: int, heads: int) -> float:
    """One self-attention module: local Q/K/V projections, local rows, global rows (the output
    dense belongs to the layer, not to this module)."""
    qkv = 2 * tokens * 3 * hidden * hidden
    return float(qkv + _attention_flops(tokens, hidden, window, n_global)
                 + _global_rows_flops(tokens, hidden, heads, n_global))


def longformer_encoder_flops(tokens: int, layers: int, hidden: int, ffn: int, window: int, n_global: int,
                             heads: int) -> float:
    """Encoder forward: per layer the linear layers 2*T*(4*h*h + 2*h*ffn) (Q, K, V, output dense,
    two feed-forward matrices), the local rows and the global rows."""
    linear = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    per_layer = (linear + _attention_flops(tokens, hidden, window, n_global)
                 + _global_rows_flops(tokens, hidden, heads, n_global))
    return float(layers * per_layer)


def lsg_encoder_flops(tokens: int, layers: int, hidden: int, ffn: int, block: int, sparse_block: int,
                      n_global: int, sparse: bool = True) -> float:
    """LSG encoder forward, useful FLOPs only (the same for every implementation).

    Per layer:
    * linear layers on every row, the g global tokens included: 2*(T + g)*(4*h*h + 2*h*ffn)
      (Q, K, V, output dense, two feed-forward matrices);
    * each of the T token queries scores and averages its g + 2*sparse_block + 3*block keys
      (the g globals, sparse_block compressed keys on each side, its block and the two next to
      it): 2*2*T*(g + 2*sparse_block + 3*block)*h; without sparse keys, g + 3*block;
    * each global query over all g + T keys: 2*2*g*(g + T)*h.
    Inputs of at most two blocks are attended densely: 2*2*(g + T)^2*h instead of the last two.
    Not counted: picking the compressed keys (norms, sorting), masks, embeddings, the pooler. The
    edge blocks' missing neighbours are counted as keys: every implementation computes them, masked.
    """
    linear = 2 * (tokens + n_global) * (4 * hidden * hidden + 2 * hidden * ffn)
    if tokens <= 2 * block:
        attention = 2 * 2 * (tokens + n_global) ** 2 * hidden
    else:
        keys = n_global + (2 * sparse_block if sparse else 0) + 3 * block
        attention = 2 * 2 * tokens * keys * hidden + 2 * 2 * n_global * (n_global + tokens) * hidden
    return float(layers * (linear + attention))


def bigbird_encoder_flops(tokens: int, layers: int, hidden: int, ffn: int, block: int, random_blocks: int) -> float:
    """BigBird (block_sparse) encoder forward, useful FLOPs only.

    Per layer: linear layers 2*T*(4*h*h + 2*h*ffn); attention 2*2*h*(keys summed over the queries):
    with nb = T / b blocks, the first and last query blocks see all T keys; the second and the
    second-to-last see 3 sliding + 1 global + r random blocks; every other block 3 sliding +
    2 global + r random blocks. Inputs of at most 5 + 2r blocks fall back to full attention (T^2 keys).
    """
    linear = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    nb = tokens // block
    if nb <= 5 + 2 * random_blocks:
        key_count = tokens * tokens
    else:
        key_count = block * (2 * tokens + 2 * (4 + random_blocks) * block + (nb - 4) * (5 + random_blocks) * block)
    return float(layers * (linear + 2 * 2 * key_count * hidden))


def hat_encoder_flops(tokens: int, layout: str, hidden: int, ffn: int, segment_size: int) -> float:
    """HAT encoder forward, useful FLOPs only. The input is N = T / L segments of L tokens.

    `layout`: one of S, D, SD per layer joined by "|" (HATConfig's layout string). Per S (segment-wise)
    encoder: linear layers on every token 2*T*(4*h*h + 2*h*ffn) and each token attending over the L
    keys of its segment 2*2*T*L*h. Per D (cross-segment) encoder: the same over the N segment tokens,
    2*N*(4*h*h + 2*h*ffn) + 2*2*N*N*h. An SD layer counts both. Not counted: embeddings, the segment
    position embedding added before each D encoder, masks.
    """
    segments = tokens // segment_size
    kinds = [kind.strip().upper() for kind in layout.split("|")]
    if not kinds or any(kind not in ("S", "D", "SD") for kind in kinds):
        raise ValueError(f"layout {layout!r}: give S, D or SD per layer, joined by '|'")

    def encoder(rows: int, keys: int) -> int:
        return 2 * rows * (4 * hidden * hidden + 2 * hidden * ffn) + 2 * 2 * rows * keys * hidden

    segment_wise = sum("S" in kind for kind in kinds)
    cross_segment = sum("D" in kind for kind in kinds)
    return float(segment_wise * encoder(tokens, segment_size) + cross_segment * encoder(segments, segments))


# ---------------------------------------------------------------------------------------------
# A run's start


def setup_run(args, run_memory_probe: Callable[[dict], None]) -> str | None:
    """The start every benchmark's main shares, after parsing `args` (with `threads` and
    `memory_probe`): sets the torch threads; in a `--memory-probe` child, runs `run_memory_probe`
    on its spec and returns None (the child is done); otherwise prints and returns the command
    that reproduces this run."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        run_memory_probe(json.loads(args.memory_probe))
        return None
    command = reproduce_command()
    print(f"reproduce: {command}", flush=True)
    return command


def reproduce_command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([python, *sys.argv])}"


def code_version() -> str:
    git = ["git", "-C", str(Path(__file__).resolve().parent)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Measurement:
    """One implementation on one case."""

    seconds: float  # median per call
    tokens: int  # tokens per call
    flops: float  # counted useful FLOPs per call
    peak_gflops: float  # measured machine peak for the case's dtype
    peak_bytes: float | None = None  # peak memory growth of one call
    samples: list[float] | None = None  # every timed call's seconds (min / median / max)

    @property
    def spread(self) -> float | None:
        return relative_spread(self.samples)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def mfu(self) -> float:
        return self.flops / self.seconds / (self.peak_gflops * 1e9)

    @property
    def peak_mib(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / MIB


@dataclass
class Comparison:
    case: str
    seq_len: int
    ours: Measurement | None
    peer: Measurement | None
    rounds: int = 0  # A B B A rounds timed
    note: str = ""
    interference: Interference | None = None

    @property
    def disturbed(self) -> list[str]:
        """Reasons to distrust this timing (see `disturbed_reasons`); empty when it looks clean."""
        samples = {side: m.samples for side, m in (("ours", self.ours), ("peer", self.peer)) if m and m.samples}
        return disturbed_reasons(samples, self.interference)

    def row(self) -> dict:
        o, p = self.ours, self.peer
        row = {"case": self.case, "seq_len": self.seq_len, "rounds": self.rounds}
        for side, m in (("ours", o), ("peer", p)):
            row[f"{side}_s_per_call"] = format_value(m and m.seconds, "{:.4g}")
            row[f"{side}_min_s"] = format_value(m and m.samples and min(m.samples), "{:.4g}")
            row[f"{side}_max_s"] = format_value(m and m.samples and max(m.samples), "{:.4g}")
            row[f"{side}_spread_pct"] = format_value(m and m.spread is not None and 100 * m.spread, "{:.0f}")
            row[f"{side}_tokens_per_s"] = format_value(m and m.tokens_per_s, "{:.1f}")
            row[f"{side}_mfu_pct"] = format_value(m and 100 * m.mfu, "{:.2f}")
            row[f"{side}_peak_mib"] = format_value(m and m.peak_mib, "{:.1f}")
        row["speed_ratio"] = format_value(o and p and o.tokens_per_s / p.tokens_per_s, "{:.2f}")
        both_mem = o and p and o.peak_bytes is not None and p.peak_bytes
        row["memory_ratio"] = format_value(both_mem and o.peak_bytes / p.peak_bytes, "{:.2f}")
        row["gflop_per_call"] = format_value((o or p) and (o or p).flops / 1e9, "{:.1f}")
        i = self.interference
        row["load_before"] = format_value(i and i.load_before, "{:.2f}")
        row["load_after"] = format_value(i and i.load_after, "{:.2f}")
        row["other_cores"] = format_value(i and i.other_cores, "{:.2f}")
        row["disturbed"] = "; ".join(self.disturbed) if (o or p) else ""
        row["note"] = self.note
        return row


@dataclass
class ImplRow:
    """One implementation on one case and length, with its speed and memory over the peer row of
    the same case and length (`fill_ratios`). A benchmark subclasses it to name its peer's CSV
    columns (`peer_column`) and to say what meets its targets (`target`)."""

    case: str
    seq_len: int
    impl: str
    measurement: Measurement | None
    rounds: int = 0
    note: str = ""
    speed_ratio: float | None = None  # tokens/s over the peer's (same case and length)
    memory_ratio: float | None = None  # peak memory over the peer's

    peer_column: ClassVar[str] = "peer"
    gflop_pattern: ClassVar[str] = "{:.1f}"

    def target(self) -> str:
        return ""

    def values(self) -> dict:
        m = self.measurement
        return {
            "case": self.case, "seq_len": self.seq_len, "impl": self.impl, "rounds": self.rounds,
            "s_per_call": format_value(m and m.seconds, "{:.4g}"),
            "tokens_per_s": format_value(m and m.tokens_per_s, "{:.1f}"),
            "mfu_pct": format_value(m and 100 * m.mfu, "{:.2f}"),
            "peak_mib": format_value(m and m.peak_mib, "{:.1f}"),
            "gflop_per_call": format_value(m and m.flops / 1e9, self.gflop_pattern),
            f"speed_vs_{self.peer_column}": format_value(self.speed_ratio, "{:.2f}"),
            f"memory_vs_{self.peer_column}": format_value(self.memory_ratio, "{:.2f}"),
            "target": self.target(),
            "note": self.note,
        }


def format_value(value, pattern: str) -> str:
    """`pattern` applied to `value`; "" for a missing value (None, False or NaN)."""
    if value is None or value is False or (isinstance(value, float) and math.isnan(value)):
        return ""
    return pattern.format(value)


TABLE_COLUMNS = (  # (header, row key)
    ("case", "case"), ("T", "seq_len"), ("rounds", "rounds"),
    ("ours tok/s", "ours_tokens_per_s"), ("peer tok/s", "peer_tokens_per_s"), ("speed x", "speed_ratio"),
    ("ours MFU%", "ours_mfu_pct"), ("peer MFU%", "peer_mfu_pct"),
    ("ours MiB", "ours_peak_mib"), ("peer MiB", "peer_peak_mib"), ("mem x", "memory_ratio"),
    ("ours spread%", "ours_spread_pct"), ("peer spread%", "peer_spread_pct"), ("others (cores)", "other_cores"),
    ("disturbed", "disturbed"), ("note", "note"),
)


def format_table(comparisons: list[Comparison]) -> str:
    return format_columns([c.row() for c in comparisons], TABLE_COLUMNS)


def format_columns(rows: list[dict], columns) -> str:
    """A plain-text table: `columns` are (header, key of each row dict) pairs."""
    cells = [[str(row[key]) for _, key in columns] for row in rows]
    headers = [h for h, _ in columns]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [headers, *cells]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")  # bf16 dot products; AMX tiles (Intel Sapphire Rapids+)


def cpu_info() -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo (platform.processor() and no flags elsewhere)."""
    name, flags = platform.processor() or platform.machine(), set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not flags:
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    return name, flags


def cpu_kind() -> str:
    """The CPU kind a result table is kept per: which bf16 units the CPU has."""
    _, flags = cpu_info()
    if {"amx_bf16", "amx_tile"} <= flags:
        return "AMX"
    return "AVX512-BF16, no AMX" if "avx512_bf16" in flags else "no bf16 units"


def machine_description(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    name, flags = cpu_info()
    bf16 = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in BF16_FLAGS)
    return (f"{name} ({cpu_kind()}: {bf16}), {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
            f"torch {torch.__version__}")


def write_results(comparisons: list[Comparison], stem: str, out_dir: Path, command: str, context: dict,
                  peer_name: str) -> list[Path]:
    """Writes <stem>.csv, <stem>.md (command, context, table) and <stem>.png; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "png"))
    write_csv([c.row() for c in comparisons], csv_path)
    lines = markdown_head(f"{stem}: ours vs {peer_name}", command, context)
    lines += ["", "Ratios are ours / peer (speed > 1: ours faster; memory < 1: ours smaller).", "",
              "```", format_table(comparisons), "```", ""]
    md_path.write_text("\n".join(lines))
    plot_comparisons(comparisons, png_path, title=f"{stem}: ours vs {peer_name}", peer_name=peer_name)
    return [csv_path, md_path, png_path]


def write_csv(rows: list[dict], path: Path) -> None:
    """The row dicts as CSV, columns in the first row's key order."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown_head(title: str, command: str, context: dict) -> list[str]:
    """The opening lines of a results .md: title, the reproducing command, the context as a list."""
    lines = [f"# {title}", "", "Reproduce:", "", "```", command, "```", ""]
    return lines + [f"- {key}: {value}" for key, value in context.items()]


def plot_comparisons(comparisons: list[Comparison], path: Path, title: str, peer_name: str) -> None:
    """2 x 2 panels: tokens/s, MFU, peak memory (ours and peer side by side), and the ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{c.case} {c.seq_len}" for c in comparisons]
    x = list(range(len(labels)))
    fig, axes = plt.subplots(2, 2, figsize=(max(10, 1.6 * len(labels) + 2), 8))
    panels = (("tokens / s", lambda m: m.tokens_per_s, True), ("MFU %", lambda m: 100 * m.mfu, False),
              ("peak memory growth (MiB)", lambda m: m.peak_mib, True))
    for ax, (name, metric, log) in zip(axes.flat, panels):
        for offset, side, colour in ((-0.2, "ours", "tab:blue"), (0.2, "peer", "tab:orange")):
            values = [_metric_or_nan(getattr(c, side), metric) for c in comparisons]
            ax.bar([i + offset for i in x], values, width=0.4, color=colour, label=side if side == "ours" else peer_name)
        ax.set_title(name)
        ax.set_yscale("log" if log else "linear")
    ratios = axes.flat[3]
    for offset, key, colour, name in ((-0.2, "speed_ratio", "tab:green", "speed (tokens/s)"),
                                      (0.2, "memory_ratio", "tab:purple", "peak memory")):
        values = [float(c.row()[key] or "nan") for c in comparisons]
        ratios.bar([i + offset for i in x], values, width=0.4, color=colour, label=name)
    ratios.axhline(1.0, color="black", linewidth=0.8)
    ratios.set_title("ours / peer")
    _finish_plot(fig, axes, x, labels, title, path)


def fill_ratios(rows: list, reference: str) -> None:
    """Rows with one implementation each (attributes case, seq_len, impl, measurement, speed_ratio,
    memory_ratio): the speed and memory ratios of every row over the `reference` implementation's
    row of the same case and length (left None where either is missing)."""
    references = {(r.case, r.seq_len): r.measurement for r in rows if r.impl == reference and r.measurement}
    for row in rows:
        ref, m = references.get((row.case, row.seq_len)), row.measurement
        if row.impl == reference or ref is None or m is None:
            continue
        row.speed_ratio = ref.seconds / m.seconds
        if m.peak_bytes is not None and ref.peak_bytes:
            row.memory_ratio = m.peak_bytes / ref.peak_bytes


def plot_impl_rows(rows: list, path: Path, title: str, colours: dict[str, str], subject: str, reference: str,
                   targets: dict[str, dict]) -> None:
    """The plot of a benchmark with one row per implementation, case and length (rows as in
    `fill_ratios`), 2 x 2 panels: tokens/s, MFU, peak memory (the implementations in `colours`
    side by side per case and length), and the `subject` implementation's ratios over `reference`
    with its `targets` ({case: {"speed": x, "memory": y}}) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r.case, r.seq_len) for r in rows))
    impls = [impl for impl in colours if any(r.impl == impl for r in rows)]
    by_key = {(r.case, r.seq_len, r.impl): r for r in rows}
    x = list(range(len(keys)))
    fig, axes = plt.subplots(2, 2, figsize=(max(10, 1.8 * len(keys) + 2), 8))
    width = 0.8 / max(1, len(impls))
    panels = (("tokens / s", lambda m: m.tokens_per_s, True), ("MFU %", lambda m: 100 * m.mfu, False),
              ("peak memory growth (MiB)", lambda m: m.peak_mib, True))
    for ax, (name, metric, log) in zip(axes.flat, panels):
        for j, impl in enumerate(impls):
            values = []
            for case, seq_len in keys:
                row = by_key.get((case, seq_len, impl))
                value = metric(row.measurement) if row and row.measurement else None
                values.append(math.nan if value is None else value)
            ax.bar([i - 0.4 + width * (j + 0.5) for i in x], values, width=width, color=colours[impl], label=impl)
        ax.set_title(name)
        if log:
            ax.set_yscale("log")
    ratios = axes.flat[3]
    for offset, attr, colour, name in ((-0.2, "speed_ratio", "tab:green", "speed (tokens/s)"),
                                       (0.2, "memory_ratio", "tab:purple", "peak memory")):
        values = []
        for case, seq_len in keys:
            row = by_key.get((case, seq_len, subject))
            value = getattr(row, attr) if row else None
            values.append(math.nan if value is None else value)
        ratios.bar([i + offset for i in x], values, width=0.4, color=colour, label=name)
    for i, (case, _) in enumerate(keys):
        goals = targets.get(case, {})
        if "speed" in goals:
            ratios.hlines(goals["speed"], i - 0.4, i, colors="darkgreen", linestyles="--")
        if "memory" in goals:
            ratios.hlines(goals["memory"], i, i + 0.4, colors="indigo", linestyles="--")
    ratios.axhline(1.0, color="black", linewidth=0.8)
    ratios.set_title(f"{subject} / {reference} (dashed: targets)")
    _finish_plot(fig, axes, x, [f"{case} {seq_len}" for case, seq_len in keys], title, path)


def _finish_plot(fig, axes, x, labels: list[str], title: str, path: Path) -> None:
    """Case labels under every panel, grids and legends, the title; written to `path`."""
    import matplotlib.pyplot as plt

    for ax in axes.flat:
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metric_or_nan(m: Measurement | None, metric) -> float:
    value = None if m is None else metric(m)
    return float("nan") if value is None else value
