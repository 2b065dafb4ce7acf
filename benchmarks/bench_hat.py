"""HAT against Longformer: our HATModel, our LongformerModel and `transformers`' LongformerModel, one
encoder geometry, the same input ids, measured in the same run.

Implementations (one result row each per case and length):
  hat            longdoc.HATModel, layout S|S|SD|S|S|SD|S|S|SD|S|S|SD (hierarchical-transformer-base: every
                 layer a segment-wise encoder, every third a cross-segment one too), segments of 128 tokens
                 (4096 tokens = 32 segments), random weights
  longformer     longdoc.LongformerModel, attention_window 512 (as allenai/longformer-base-4096), 1 global
                 token (position 0), random weights: the reference of the ratios
  hf-longformer  transformers' LongformerModel with longformer's weights (one state dict)
Shared geometry: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 50265, RoBERTa specials (pad 1);
batch 1, no padding; random ids with every segment's first id <s> (HAT's segment [CLS]), the same ids
for every implementation; every dropout probability 0; LayerNorms randomised (bench_lsg's reason: the
sum of a LayerNorm with weight 1 and bias 0 is identically 0).

Cases (bench_lsg's definitions):
  infer_fp32       eval mode, torch.inference_mode, fp32 forward
  train_step_fp32  train mode, forward + backward of last_hidden_state.sum(), gradient buffers allocated
                   beforehand (a steady-state step; no optimizer)
Target (hat / longformer): tokens/s >= 1.4x at lower peak memory (< 1.0x), inference and training.
For context, the HAT paper (Chalkidis et al. 2022) reports 40-45% faster, 10-20% less memory than an
equally sized Longformer. The note of hf-longformer's row says whether it gave longformer's outputs.

Timing: harness.time_interleaved_timers, A B C C B A over the implementations, median s per call.
Peak memory: a fresh process per row (`--memory-probe`), harness.measure_peak_memory. MFU: the
harness's hat_encoder_flops / longformer_encoder_flops (x3 for a training step) / time / fp32 peak.

Run from the repository root:
  .venv/bin/python benchmarks/bench_hat.py            # base geometry, 4096 tokens (long on 2 cores)
  .venv/bin/python benchmarks/bench_hat.py --quick    # tiny geometry, 256 and 512 tokens: a smoke test
Results: benchmarks/results/hat/hat[_quick].{csv,md,png}.
"""

from __future__ import annotations

import argparse
import datetime
import gc
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

import harness
from bench_longformer import ROBERTA_SPECIAL
from bench_lsg import NO_DROPOUT, randomise_layer_norms
from lsg_peer import digests_agree, make_workload, output_digest

IMPLS = ("hat", "longformer", "hf-longformer")
REFERENCE = "longformer"  # ratios are each row over this implementation's row
CASES = ("infer_fp32", "train_step_fp32")
DEFAULT_LENGTHS, QUICK_LENGTHS = (4096,), (256, 512)
N_GLOBAL = 1
# geometry shared by every implementation; the quick one keeps window / segment = 4
GEOMETRY = {
    False: dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, vocab_size=50265),
    True: dict(hidden_size=64, num_attention_heads=4, intermediate_size=256, vocab_size=1000),
}
LAYOUT = {False: "|".join(["S", "S", "SD"] * 4), True: "S|SD"}  # base: hierarchical-transformer-base's
SEGMENT = {False: 128, True: 32}  # HAT's max_sentence_size
WINDOW = {False: 512, True: 128}  # Longformer's attention_window (both sides together)
TARGETS = {case: {"speed": 1.4, "memory": 1.0} for case in CASES}  # hat / longformer: speed >=, memory <
PAPER_CLAIM = ("Chalkidis et al. 2022, 'An Exploration of Hierarchical Attention Transformers for Efficient Long "
               "Document Classification' (arXiv 2210.05529): HAT processes documents 40-45% faster and uses 10-20% "
               "less GPU memory than an equally sized Longformer (their setup, not this machine's)")
COLOURS = {"hat": "tab:blue", "longformer": "tab:green", "hf-longformer": "tab:orange"}
TABLE_COLUMNS = (  # (header, key of Row.values)
    ("case", "case"), ("T", "seq_len"), ("impl", "impl"), ("rounds", "rounds"), ("s/call", "s_per_call"),
    ("tok/s", "tokens_per_s"), ("MFU%", "mfu_pct"), ("MiB", "peak_mib"), ("GFLOP", "gflop_per_call"),
    ("speed x", "speed_vs_longformer"), ("mem x", "memory_vs_longformer"), ("target", "target"), ("note", "note"),
)
fmt = harness.format_value


# ---------------------------------------------------------------------------------------------
# Settings and models


@dataclass
class Settings:
    quick: bool
    longest: int  # longest input: HAT's max_sentences, Longformer's position table

    @property
    def layout(self) -> str:
        return LAYOUT[self.quick]

    @property
    def segment(self) -> int:
        return SEGMENT[self.quick]

    @property
    def window(self) -> int:
        return WINDOW[self.quick]

    def config_kwargs(self, impl: str) -> dict:
        base = {**ROBERTA_SPECIAL, **NO_DROPOUT, **GEOMETRY[self.quick]}
        if impl == "hat":
            return {**base, "encoder_layout": self.layout, "max_sentence_size": self.segment,
                    "max_sentences": self.longest // self.segment}
        # RoBERTa positions start at pad_token_id + 1 = 2: 2 rows more than the longest input
        return {**base, "num_hidden_layers": len(self.layout.split("|")), "attention_window": self.window,
                "max_position_embeddings": self.longest + 2}

    def flops(self, impl: str, case: str, seq_len: int) -> float:
        """Counted useful FLOPs of one call (x3 for a training step); both Longformers count the same."""
        geo = GEOMETRY[self.quick]
        h, ffn = geo["hidden_size"], geo["intermediate_size"]
        if impl == "hat":
            forward = harness.hat_encoder_flops(seq_len, self.layout, h, ffn, self.segment)
        else:
            forward = harness.longformer_encoder_flops(seq_len, len(self.layout.split("|")), h, ffn, self.window,
                                                       N_GLOBAL, geo["num_attention_heads"])
        return forward * (harness.TRAIN_STEP_FLOP_FACTOR if case == "train_step_fp32" else 1)


def build_model(impl: str, settings: Settings, weights: dict | None = None) -> torch.nn.Module:
    """One implementation with random weights (seeded, LayerNorms randomised); hf-longformer takes
    `weights` (longformer's state dict: the names are the same) when given."""
    import longdoc

    torch.manual_seed(0)
    kwargs = settings.config_kwargs(impl)
    if impl == "hat":
        model = longdoc.HATModel(longdoc.HATConfig(**kwargs))
    elif impl == "longformer":
        model = longdoc.LongformerModel(longdoc.LongformerConfig(**kwargs))
    elif impl == "hf-longformer":
        model = transformers.LongformerModel(transformers.LongformerConfig(**kwargs))
    else:
        raise ValueError(impl)
    randomise_layer_norms(model)
    if weights is not None:
        model.load_state_dict(weights)
    return model


def model_inputs(impl: str, seq_len: int, settings: Settings, device: str) -> dict:
    """Random ids in [3, vocab) with <s> (id 0) opening every segment: HAT's layout, and the same
    ids for the Longformers, whose global token is position 0."""
    gen = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(3, GEOMETRY[settings.quick]["vocab_size"], (1, seq_len), generator=gen)
    ids[:, :: settings.segment] = ROBERTA_SPECIAL["bos_token_id"]
    inputs = dict(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device))
    if impl != "hat":
        is_global = torch.zeros_like(inputs["attention_mask"])
        is_global[:, :N_GLOBAL] = 1
        inputs["global_attention_mask"] = is_global
    return inputs


def parameter_count(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M"


# ---------------------------------------------------------------------------------------------
# Rows


class Row(harness.ImplRow):
    peer_column = "longformer"
    gflop_pattern = "{:.2f}"

    def target(self) -> str:
        """'met' / 'MISSED' against the case's targets (hat rows only)."""
        goals = TARGETS.get(self.case) if self.impl == "hat" else None
        if not goals:
            return ""

        def verdict(ratio, ok) -> str:
            return "n/a" if ratio is None else "met" if ok else "MISSED"

        speed = verdict(self.speed_ratio, self.speed_ratio is not None and self.speed_ratio >= goals["speed"])
        memory = verdict(self.memory_ratio, self.memory_ratio is not None and self.memory_ratio < goals["memory"])
        return f"speed>={goals['speed']}x {speed}, mem<{goals['memory']}x {memory}"


def target_summary(rows: list[Row]) -> list[str]:
    return [f"- {row.case} T={row.seq_len}: hat/longformer speed {fmt(row.speed_ratio, '{:.2f}x') or 'n/a'}, "
            f"memory {fmt(row.memory_ratio, '{:.2f}x') or 'not measured'}: {row.target()}"
            for row in rows if row.target()]


# ---------------------------------------------------------------------------------------------
# Timing


def time_one(case: str, seq_len: int, models: dict, settings: Settings, args, peak: float) -> list[Row]:
    """Rows of every implementation on one case and length, timed together (A B C C B A). The first
    call's output digest of each Longformer tells whether both computed the same thing."""
    digests: dict = {}

    def timer(impl: str):
        model = models[impl]
        fn = make_workload(case, model, model_inputs(impl, seq_len, settings, args.device))

        def run() -> float:
            seconds, output = harness.timed_call(fn, args.device)
            if impl not in digests:
                digests[impl] = output_digest(case, model, output)
            return seconds

        return run

    seconds, rounds = harness.time_interleaved_timers({impl: timer(impl) for impl in models}, args.rounds,
                                                      args.case_budget_s)
    rows = [Row(case, seq_len, impl, harness.Measurement(seconds[impl], seq_len, settings.flops(impl, case, seq_len),
                                                         peak), rounds)
            for impl in models]
    if {"longformer", "hf-longformer"} <= set(digests):
        same = digests_agree(digests["longformer"], digests["hf-longformer"])
        peer = next(row for row in rows if row.impl == "hf-longformer")
        peer.note = "same outputs as longformer" if same else "OUTPUTS DIFFER from longformer"
    print(f"{case} T={seq_len} ({rounds} rounds): " + ", ".join(f"{k} {v:.4g} s" for k, v in seconds.items()),
          flush=True)
    return rows


def build_models(args, settings: Settings) -> dict[str, torch.nn.Module]:
    """The implementations of --impls, in IMPLS order; hf-longformer gets longformer's weights."""
    models = {}
    for impl in args.impls:
        weights = models["longformer"].state_dict() if impl == "hf-longformer" and "longformer" in models else None
        models[impl] = build_model(impl, settings, weights).to(args.device)
    return models


# ---------------------------------------------------------------------------------------------
# Memory: one fresh process per row


def run_memory_probe(spec: dict) -> None:
    """In a fresh interpreter: build one implementation (weight values do not change memory, so
    hf-longformer keeps its own), set up the case, measure one call."""
    torch.set_num_threads(spec["threads"])  # the timing run's
    settings = Settings(**spec["settings"])
    case, impl, device = spec["case"], spec["impl"], spec["device"]
    model = build_model(impl, settings).to(device)
    workload = make_workload(case, model, model_inputs(impl, spec["seq_len"], settings, device))
    harness.report_memory_probe(harness.measure_peak_memory(workload, device))


def measure_memory(rows: list[Row], args, settings: Settings) -> str:
    """Fills in peak_bytes of every timed row (with --quick only at the longest length: every probe
    pays the imports); returns the methods used. A failed probe (e.g. out of memory) leaves the others."""
    measured = [row for row in rows if row.measurement is not None]
    if args.quick:
        measured = [row for row in measured if row.seq_len == settings.longest]

    def probe(row: Row):
        spec = dict(case=row.case, seq_len=row.seq_len, impl=row.impl, device=args.device,
                    threads=torch.get_num_threads(), settings=settings.__dict__)
        try:
            return harness.probe_memory_in_subprocesses(__file__, [spec], jobs=1)[0]
        except RuntimeError as error:
            print(f"memory {row.case} T={row.seq_len} {row.impl}: {error}", flush=True)
            return error

    return harness.fill_peak_memory(measured, probe, args.memory_jobs)


# ---------------------------------------------------------------------------------------------
# Results


def write_results(rows: list[Row], stem: str, out_dir: Path, command: str, context: dict) -> list[Path]:
    """<stem>.csv, <stem>.md (command, context, targets, table) and <stem>.png; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "png"))
    harness.write_csv([row.values() for row in rows], csv_path)
    title = f"{stem}: HAT vs Longformer (ours and transformers')"
    lines = harness.markdown_head(title, command, context)
    lines += ["", "Columns: s/call median seconds per call; tok/s input tokens per second; MFU% counted useful "
              "FLOPs / time / the measured fp32 matmul peak; MiB peak memory growth of one call; GFLOP counted per "
              "call; speed x and mem x the row's tokens/s and peak memory over longformer's (ours; speed > 1: "
              "faster; memory < 1: smaller); target: hat against the goal below.", "",
              "Target (hat / longformer): speed >= 1.4x at lower memory (< 1.0x), inference and training step.", "",
              f"For context, the paper's claim: {PAPER_CLAIM}.", ""]
    lines += target_summary(rows) + ["", "```", harness.format_columns([r.values() for r in rows], TABLE_COLUMNS),
                                     "```", ""]
    md_path.write_text("\n".join(lines))
    harness.plot_impl_rows(rows, png_path, title, COLOURS, "hat", REFERENCE, TARGETS)
    return [csv_path, md_path, png_path]


def run_context(args, settings: Settings, lengths: tuple, peak: float, memory_methods: str, sizes: dict) -> dict:
    """What a reader needs to interpret and reproduce the numbers (goes into the .md)."""
    geo = GEOMETRY[settings.quick]
    segments = ", ".join(f"{t // settings.segment} x {settings.segment}" for t in lengths)
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description(args.device),
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__} (hf-longformer); "
                    f"longdoc code {harness.code_version()}",
        "matmul peak GFLOP/s": f"fp32 {peak:.1f}",
        "geometry": f"{len(settings.layout.split('|'))} layers, {geo}, RoBERTa specials (pad 1)",
        "hat": f"layout {settings.layout}, max_sentence_size {settings.segment}, segments {segments}; each token "
               f"query attends over the {settings.segment} keys of its segment, each segment query (D layers) over "
               f"all segments",
        "longformer": f"attention_window {settings.window} ({2 * (settings.window // 2) + 1 + N_GLOBAL} keys per "
                      f"token query), {N_GLOBAL} global token (position 0); hf-longformer has longformer's weights",
        "parameters": ", ".join(f"{impl} {size}" for impl, size in sizes.items()),
        "inputs": "batch 1, no padding, random ids with <s> opening every segment (the same for every "
                  "implementation), random weights, LayerNorms randomised, every dropout probability 0",
        "lengths": list(lengths),
        "timing": f"1 warm-up, then up to {args.rounds} rounds of A B C C B A over the implementations (fewer when a "
                  f"case would take over {args.case_budget_s:.0f} s; see rounds); median s per call",
        "memory": "peak growth of one call over the set-up, a fresh process per row "
                  f"(peak read from {memory_methods})",
        "MFU": "counted useful FLOPs (harness: hat_encoder_flops, longformer_encoder_flops; x3 for a training "
               "step) / time / fp32 peak",
    }


# ---------------------------------------------------------------------------------------------
# Main run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--lengths", nargs="+", type=int,
                        help="input tokens, whole HAT segments (default 4096; --quick 256 512)")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS),
                        help=f"implementations to run (ratios are over {REFERENCE}: keep it for them)")
    parser.add_argument("--rounds", type=int, help="A B C C B A rounds after the warm-up (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int,
                        help="torch threads (default: one per core; 1 with --quick, whose tiny matmuls gain nothing "
                             "from threads)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 tiny layers (hidden 64, layout S|SD, segments of 32, window 128), lengths "
                             "256 and 512, 1 round, memory at the longest length only")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "hat", help="results directory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory probes")
    parser.add_argument("--memory-jobs", type=int,
                        help="memory probes run side by side (default 1; 2 with --quick)")
    parser.add_argument("--case-budget-s", type=float, default=1800.0,
                        help="timing budget per case and length: slow cases get fewer rounds, at least 1")
    parser.add_argument(harness.MEMORY_PROBE_FLAG, dest="memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.threads is None and args.quick:
        args.threads = 1
    if args.memory_jobs is None:
        args.memory_jobs = 2 if args.quick else 1
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    segment = SEGMENT[args.quick]
    if args.lengths and any(t < segment or t % segment for t in args.lengths):
        parser.error(f"--lengths must be whole HAT segments (multiples of {segment}), got {args.lengths}")
    args.impls = [impl for impl in IMPLS if impl in args.impls]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    command = harness.setup_run(args, run_memory_probe)
    if command is None:  # a memory-probe child
        return
    lengths = tuple(args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS))
    settings = Settings(quick=args.quick, longest=max(lengths))
    peak = harness.matmul_peak_gflops(torch.float32, args.device, min_seconds=0.05 if args.quick else 0.2)
    print(f"matmul peak GFLOP/s: fp32 {peak:.1f}", flush=True)
    models = build_models(args, settings)
    sizes = {impl: parameter_count(model) for impl, model in models.items()}
    print("parameters: " + ", ".join(f"{impl} {size}" for impl, size in sizes.items()), flush=True)
    rows = []
    for case in args.cases:
        for seq_len in lengths:
            rows += time_one(case, seq_len, models, settings, args, peak)
            gc.collect()
    del models
    gc.collect()
    memory_methods = "not measured (--skip-memory)"
    if not args.skip_memory:
        print("peak memory: one fresh process per row...", flush=True)
        memory_methods = measure_memory(rows, args, settings)
    harness.fill_ratios(rows, REFERENCE)
    print()
    print(harness.format_columns([row.values() for row in rows], TABLE_COLUMNS))
    print("\n".join(target_summary(rows)))
    stem = "hat" + ("_quick" if args.quick else "")
    context = run_context(args, settings, lengths, peak, memory_methods, sizes)
    for path in write_results(rows, stem, args.out, command, context):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
