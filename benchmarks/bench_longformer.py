"""Our Longformer against `transformers`' Longformer: same geometry, same weights, same run.

Cases (one result row per case and length; batch 1, one global token at position 0, random
token ids, random weights loaded into both models from one state dict):
  infer_fp32            whole model, eval mode, torch.inference_mode, fp32
  infer_bf16_autocast   the same under torch.autocast(bfloat16)
  attention_op          one self-attention module alone, called the way each encoder calls it
  train_step_fp32       model.train() (dropout on), forward + backward of last_hidden_state.sum(),
                        gradient buffers allocated beforehand (a steady-state step)
  bf16_over_fp32        OUR model on both sides: "ours" under bf16 autocast, "peer" in fp32, so the
                        speed ratio is our bf16 speed-up, timed interleaved (MFU of each side over
                        its own dtype's peak)

Run from the repository root:
  .venv/bin/python benchmarks/bench_longformer.py            # longformer-base geometry (slow on CPU)
  .venv/bin/python benchmarks/bench_longformer.py --quick    # 2 tiny layers, seconds: a smoke test
Results: benchmarks/results/longformer[_quick].{csv,md,png}.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch
import transformers
from transformers.models.longformer import modeling_longformer as peer_longformer

import harness

PEER_NAME = f"transformers {transformers.__version__}"
SIDES = ("ours", "peer")
N_GLOBAL = 1
DEFAULT_LENGTHS = {
    "infer_fp32": (1024, 4096, 16384),
    "infer_bf16_autocast": (1024, 4096),
    "attention_op": (4096,),
    "train_step_fp32": (4096,),
    "bf16_over_fp32": (4096,),
}
QUICK_LENGTHS = (256, 512)
BASE_GEOMETRY = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                     attention_window=512, vocab_size=50265, max_tokens=16384)
QUICK_GEOMETRY = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, intermediate_size=512,
                      attention_window=64, vocab_size=1000, max_tokens=512)
ROBERTA_SPECIAL = dict(bos_token_id=0, pad_token_id=1, eos_token_id=2, sep_token_id=2, type_vocab_size=1,
                       layer_norm_eps=1e-5, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def config_kwargs(quick: bool, longest: int) -> dict:
    """Config fields shared by both models. Positions start at pad_token_id + 1 = 2, so the
    table needs 2 rows more than the longest input (16384 + 2 for the base geometry)."""
    geometry = dict(QUICK_GEOMETRY if quick else BASE_GEOMETRY)
    max_tokens = max(geometry.pop("max_tokens"), longest)
    return {**ROBERTA_SPECIAL, **geometry, "max_position_embeddings": max_tokens + 2}


# ---------------------------------------------------------------------------------------------
# Models and workloads. `self_check` builds the peer on both sides: an A/A run whose ratios
# should be 1.0 and whose spread shows the noise of the machine.


def build_model(side: str, kwargs: dict, self_check: bool) -> torch.nn.Module:
    if side == "peer" or self_check:
        return transformers.LongformerModel(transformers.LongformerConfig(**kwargs))
    import longdoc

    return longdoc.LongformerModel(longdoc.LongformerConfig(**kwargs))


def build_attention(side: str, kwargs: dict, self_check: bool) -> torch.nn.Module:
    if side == "peer" or self_check:
        config = transformers.LongformerConfig(**kwargs)
        # their LongformerModel turns an int window into one per layer before building layers
        config.attention_window = [config.attention_window] * config.num_hidden_layers
        return peer_longformer.LongformerSelfAttention(config, layer_id=0)
    import longdoc
    from longdoc.models.longformer import LongformerSelfAttention

    return LongformerSelfAttention(longdoc.LongformerConfig(**kwargs), layer_id=0)


def build_pair(case: str, kwargs: dict, self_check: bool, device: str) -> dict[str, torch.nn.Module]:
    """Both sides with identical weights (the weight names are the same)."""
    build = build_attention if case == "attention_op" else build_model
    torch.manual_seed(0)
    peer = build("peer", kwargs, self_check)
    ours = build("ours", kwargs, self_check)
    ours.load_state_dict(peer.state_dict())
    return {"ours": ours.to(device), "peer": peer.to(device)}


def token_masks(seq_len: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(is_token, is_global), both (1, T) bool: no padding, global attention on token 0."""
    is_token = torch.ones(1, seq_len, dtype=torch.bool, device=device)
    is_global = torch.zeros_like(is_token)
    is_global[:, :N_GLOBAL] = True
    return is_token, is_global


def model_inputs(seq_len: int, kwargs: dict, device: str) -> dict:
    gen = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(3, kwargs["vocab_size"], (1, seq_len), generator=gen)  # 0..2 are bos/pad/eos
    is_token, is_global = token_masks(seq_len, device)
    return dict(input_ids=ids.to(device), attention_mask=is_token.long(), global_attention_mask=is_global.long())


def attention_call_inputs(side: str, seq_len: int, kwargs: dict, self_check: bool, device: str) -> dict:
    """Keyword arguments of one self-attention call, built once per forward in both encoders
    (so outside the timed call here too)."""
    gen = torch.Generator().manual_seed(seq_len)
    hidden = torch.randn(1, seq_len, kwargs["hidden_size"], generator=gen).to(device)
    is_token, is_global = token_masks(seq_len, device)
    if side == "peer" or self_check:
        # as LongformerModel.forward: 0 local, +max global, -max padding, then the derived flags
        finfo = torch.finfo(hidden.dtype)
        mask = torch.zeros(is_token.shape, dtype=hidden.dtype, device=device)
        mask = mask.masked_fill(~is_token, finfo.min).masked_fill(is_global, finfo.max)
        return dict(hidden_states=hidden, attention_mask=mask, is_index_masked=mask < 0,
                    is_index_global_attn=mask > 0, is_global_attn=bool(is_global.any()))
    from longdoc.attention.masks import LongformerPattern

    pattern = LongformerPattern.build(kwargs["attention_window"], is_token, is_global)
    return dict(hidden_states=hidden, pattern=pattern)


def make_workload(case: str, side: str, module: torch.nn.Module, seq_len: int, kwargs: dict,
                  self_check: bool, device: str):
    """A no-argument callable running the case once."""
    device_type = torch.device(device).type
    if case == "attention_op":
        inputs = attention_call_inputs(side, seq_len, kwargs, self_check, device)

        def attend():
            module.eval()
            with torch.inference_mode():
                module(**inputs)

        return attend
    inputs = model_inputs(seq_len, kwargs, device)
    if case == "train_step_fp32":
        # steady-state step: gradient buffers exist before it (as from step 2 of training) and
        # are zeroed in place, so its memory growth is activations and temporaries only
        for param in module.parameters():
            param.grad = torch.zeros_like(param)

        def train_step():
            module.train()
            module.zero_grad(set_to_none=False)
            module(**inputs).last_hidden_state.sum().backward()

        return train_step
    autocast = case == "infer_bf16_autocast" or (case == "bf16_over_fp32" and side == "ours")

    def infer():
        module.eval()
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
            module(**inputs)

    return infer


def case_flops(case: str, seq_len: int, kwargs: dict) -> float:
    h, window, heads = kwargs["hidden_size"], kwargs["attention_window"], kwargs["num_attention_heads"]
    if case == "attention_op":
        return harness.longformer_self_attention_flops(seq_len, h, window, N_GLOBAL, heads)
    forward = harness.longformer_encoder_flops(seq_len, kwargs["num_hidden_layers"], h,
                                               kwargs["intermediate_size"], window, N_GLOBAL, heads)
    return forward * (harness.TRAIN_STEP_FLOP_FACTOR if case == "train_step_fp32" else 1)


# ---------------------------------------------------------------------------------------------
# Memory probe: runs in a fresh interpreter (see harness.probe_memory_in_subprocesses)


def run_memory_probe(spec: dict) -> None:
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    kwargs = config_kwargs(spec["quick"], spec["longest"])
    case, side, device = spec["case"], spec["side"], spec["device"]
    torch.manual_seed(0)  # weight values do not change memory: only this side is built
    build = build_attention if case == "attention_op" else build_model
    module = build("ours" if case == "bf16_over_fp32" else side, kwargs, spec["self_check"]).to(device)
    workload = make_workload(case, side, module, spec["seq_len"], kwargs, spec["self_check"], device)
    harness.report_memory_probe(harness.measure_peak_memory(workload, device))


def measure_memory(rows: list[harness.Comparison], args, longest: int) -> str:
    """Fills in peak_bytes of every timed row, one fresh process per row and side (with --quick
    only at each case's longest length: every probe pays the imports); returns the methods used."""
    measured = [row for row in rows if row.ours is not None]
    if args.quick:
        longest_of = {row.case: row.seq_len for row in sorted(measured, key=lambda r: r.seq_len)}
        measured = [row for row in measured if row.seq_len == longest_of[row.case]]
    base = dict(quick=args.quick, self_check=args.self_check, device=args.device, longest=longest, threads=args.threads)
    specs = [dict(base, case=row.case, seq_len=row.seq_len, side=side) for row in measured for side in SIDES]
    results = harness.probe_memory_in_subprocesses(__file__, specs, args.memory_jobs)
    for spec, result in zip(specs, results):
        row = next(r for r in measured if (r.case, r.seq_len) == (spec["case"], spec["seq_len"]))
        getattr(row, spec["side"]).peak_bytes = result["peak_bytes"]
    return ", ".join(sorted({result["method"] for result in results}))


# ---------------------------------------------------------------------------------------------
# Main run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(DEFAULT_LENGTHS), default=list(DEFAULT_LENGTHS))
    parser.add_argument("--lengths", nargs="+", type=int,
                        help="sequence lengths for every selected case (default: per case, see DEFAULT_LENGTHS)")
    parser.add_argument("--rounds", type=int, help="A B B A rounds after the warm-up (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int,
                        help="torch threads (default: one per core; 1 with --quick, whose tiny matmuls gain nothing "
                             "from threads and stall when other jobs share the cores)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 tiny layers, lengths 256 and 512, 1 round, memory at 512 only")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR, help="results directory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory probes")
    parser.add_argument("--memory-jobs", type=int, default=2, help="memory probes run side by side (default 2)")
    parser.add_argument("--case-budget-s", type=float, default=900.0,
                        help="timing budget per case and length: slow cases get fewer rounds, at least 1")
    parser.add_argument("--max-call-seconds", type=float, default=600.0,
                        help="skip a case whose FLOPs at the measured peak already take longer than this per call")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: time each call by this process's CPU time, for a machine other jobs share "
                             "(needs --threads 1: the waits for a core are left out, contention in caches is not)")
    parser.add_argument("--self-check", action="store_true",
                        help="A/A run: the transformers model on both sides (ratios should be ~1)")
    parser.add_argument(harness.MEMORY_PROBE_FLAG, dest="memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.threads is None and args.quick:
        args.threads = 1
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1 (with more threads CPU time counts their spin-waits)")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.lengths and min(args.lengths) < 1:
        parser.error(f"--lengths must be positive, got {args.lengths}")
    return args


def time_cases(args, lengths: dict, kwargs: dict, peaks: dict) -> list[harness.Comparison]:
    """Times every case and length, ours against peer, alone on the machine."""
    comparisons, pairs = [], {}
    for case in args.cases:
        kind = "attention" if case == "attention_op" else "model"  # the model pair serves 3 cases
        peak = peaks[torch.bfloat16 if "bf16" in case else torch.float32]
        for seq_len in lengths[case]:
            flops = case_flops(case, seq_len, kwargs)
            if flops / (peak * 1e9) > args.max_call_seconds:
                note = f"skipped: {flops / 1e9:.0f} GFLOP at the {peak:.1f} GFLOP/s peak > {args.max_call_seconds:.0f} s"
                comparisons.append(harness.Comparison(case, seq_len, None, None, note=note))
                print(f"{case} T={seq_len}: {note}", flush=True)
                continue
            if kind not in pairs:
                pairs[kind] = build_pair(case, kwargs, args.self_check, args.device)
            modules = dict.fromkeys(SIDES, pairs[kind]["ours"]) if case == "bf16_over_fp32" else pairs[kind]
            workloads = {side: make_workload(case, side, modules[side], seq_len, kwargs, args.self_check,
                                             args.device) for side in SIDES}
            samples = {}
            with harness.InterferenceMonitor() as monitor:
                clock = time.process_time if args.clock == "cpu" else time.perf_counter
                seconds, rounds = harness.time_interleaved(workloads, args.rounds, args.device, args.case_budget_s,
                                                           samples, clock)
            side_peak = {"ours": peak, "peer": peaks[torch.float32] if case == "bf16_over_fp32" else peak}
            ours, peer = (harness.Measurement(seconds[side], seq_len, flops, side_peak[side], samples=samples[side])
                          for side in SIDES)
            comparison = harness.Comparison(case, seq_len, ours, peer, rounds, interference=monitor.result)
            comparisons.append(comparison)
            disturbed = "; ".join(comparison.disturbed)
            print(f"{case} T={seq_len}: ours {seconds['ours']:.4g} s ({min(samples['ours']):.4g}-"
                  f"{max(samples['ours']):.4g}), peer {seconds['peer']:.4g} s ({min(samples['peer']):.4g}-"
                  f"{max(samples['peer']):.4g}) per call, {rounds} rounds; {monitor.result.describe()}"
                  + (f"; DISTURBED: {disturbed}" if disturbed else ""), flush=True)
    return comparisons


def run_context(args, kwargs: dict, peaks: dict, memory_methods: str) -> dict:
    """What a reader needs to interpret and reproduce the numbers (goes into the .md)."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description(args.device),
        "versions": f"torch {torch.__version__}, {PEER_NAME}, longdoc code {harness.code_version()}",
        "matmul peak GFLOP/s": f"fp32 {peaks[torch.float32]:.1f}, bf16 {peaks[torch.bfloat16]:.1f}",
        "geometry": {k: kwargs[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                            "intermediate_size", "attention_window", "max_position_embeddings")},
        "inputs": f"batch 1, {N_GLOBAL} global token (position 0), no padding, random ids and weights",
        "timing": f"1 warm-up, then up to {args.rounds} rounds of A B B A (fewer when one case would take over "
                  f"{args.case_budget_s:.0f} s; see the rounds column); median s per call; spread = (max - min) / "
                  f"median over the rounds; others = CPU time other processes took during the case, in cores; "
                  f"clock: {'CPU time of this process (1 thread)' if args.clock == 'cpu' else 'wall'}",
        "disturbed when": f"others > {harness.DISTURBED_OTHER_CORES} cores or a spread > "
                          f"{100 * harness.DISTURBED_SPREAD:.0f}% (min / max seconds per side in the CSV)",
        "memory": "peak growth of one call over the set-up, in a fresh process per case and side "
                  f"(peak read from {memory_methods})",
        "self check (peer on both sides)": args.self_check,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    command = harness.setup_run(args, run_memory_probe)
    if command is None:  # a memory-probe child
        return
    lengths = {case: tuple(args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS[case]))
               for case in args.cases}
    longest = max(max(v) for v in lengths.values())
    kwargs = config_kwargs(args.quick, longest)
    window = kwargs["attention_window"]
    if any(t % window for t in lengths.get("attention_op", ())):
        raise SystemExit(f"attention_op lengths must be multiples of the attention window ({window}): the peer's "
                         f"module expects input its model already padded; got {lengths['attention_op']}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    peaks = {dtype: harness.matmul_peak_gflops(dtype, args.device, min_seconds=0.05 if args.quick else 0.2, clock=clock)
             for dtype in (torch.float32, torch.bfloat16)}
    print(f"matmul peak GFLOP/s: fp32 {peaks[torch.float32]:.1f}, bf16 {peaks[torch.bfloat16]:.1f}", flush=True)
    comparisons = time_cases(args, lengths, kwargs, peaks)
    memory_methods = "not measured (--skip-memory)"
    if not args.skip_memory:
        print("peak memory: one fresh process per case and side...", flush=True)
        memory_methods = measure_memory(comparisons, args, longest)
    print()
    print(harness.format_table(comparisons))
    stem = "longformer" + ("_quick" if args.quick else "") + ("_selfcheck" if args.self_check else "") \
        + ("_cpu_clock" if args.clock == "cpu" else "")
    context = run_context(args, kwargs, peaks, memory_methods)
    for path in harness.write_results(comparisons, stem, args.out, command, context, PEER_NAME):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
