"""LSG attention: our LSGBertModel against lsg-converter's on the same weights, in the same run,
with our Longformer and `transformers`' BigBird (comparable sparse geometry) beside them.

Implementations (one result row each per case and length):
  ours           longdoc.LSGBertModel, random weights, saved with save_pretrained
  lsg-converter  lsg_converter.bert.modeling_lsg_bert.LSGBertModel loaded from that checkpoint, run in a
                 worker process under .venv-lsg (lsg-converter 0.1.9 needs transformers 4.36.2; lsg_peer.py)
  longformer     longdoc.LongformerModel, attention_window 256, 1 global token, random weights
  bigbird        transformers' BigBirdModel, block_sparse, block 64, 3 random blocks, random weights
All share the encoder geometry: bert-base (12 layers, hidden 768, 12 heads, FFN 3072), LSG block 128,
sparse block 128, sparsity factor 2, sparsity_type norm, 1 global token; batch 1; random ids; every
dropout probability 0. LayerNorm weights are randomised too, so that outputs and gradients are not
trivially zero (a LayerNorm with weight 1, bias 0 makes last_hidden_state.sum() identically 0).

Cases:
  infer_fp32       eval mode, torch.inference_mode, fp32 forward
  train_step_fp32  train mode (dropout 0 on every side, so all do the same work), forward + backward of
                   last_hidden_state.sum(), gradient buffers allocated beforehand (a steady-state step)
  bart_16k         LSG-BART-base (6 + 6 layers, d_model 768, 12 heads, FFN 3072, vocab 50265, 16384
                   positions, same LSG settings), ours and lsg-converter's LSGBartForConditionalGeneration
                   on the same weights: two rows, `bart_encode` (encoder forward of 16384 tokens) and
                   `bart_generate` (generate(): 2 beams, exactly 32 new tokens)
Targets, ours / lsg-converter: infer_fp32 tokens/s >= 1.5x; train_step_fp32 tokens/s >= 1.3x at peak
memory <= 0.8x. The note of every `ours` row says whether ours and lsg-converter gave the same
outputs (a digest of the first timed call: hidden-state sums, loss and gradient norm, or token ids).

Timing: harness.time_interleaved_timers, A B .. B A over the implementations; lsg-converter is asked
for one call at a time and timed inside its worker. Peak memory: a fresh process per row (ours:
`--memory-probe`; lsg-converter: a fresh worker), both measured by harness.measure_peak_memory.
Rows, targets and result files: lsg_report.py.

Run from the repository root:
  .venv/bin/python benchmarks/bench_lsg.py            # base geometry, 4096 and 16384 tokens (hours on 2 cores)
  .venv/bin/python benchmarks/bench_lsg.py --quick    # tiny geometry, 512 and 1024 tokens: a smoke test
Results: benchmarks/results/lsg/lsg[_quick].{csv,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

import harness
from lsg_peer import PEER, PeerWorker, WorkerError, digests_agree, make_workload, model_inputs, output_digest
from lsg_report import Row, fill_ratios, format_table, target_summary, write_results

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LSG_PYTHON = Path(os.environ.get("LONGDOC_LSG_ORACLE", ROOT / ".venv-lsg" / "bin" / "python"))
IMPLS = ("ours", PEER, "longformer", "bigbird")
ENCODER_CASES = ("infer_fp32", "train_step_fp32")
BART_ROWS = ("bart_encode", "bart_generate")  # the rows of case bart_16k
CASES = (*ENCODER_CASES, "bart_16k")
DEFAULT_LENGTHS, QUICK_LENGTHS = (4096, 16384), (512, 1024)
DEFAULT_BART_LENGTH, QUICK_BART_LENGTH = 16384, 1024
N_GLOBAL = 1

ENCODER = {  # bert-base, or a tiny one for --quick
    False: dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                vocab_size=30522, max_tokens=16384),
    True: dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
               vocab_size=1000, max_tokens=1024),
}
LSG = {  # the quick geometry keeps the ratios: sparse block = block, Longformer window = 2 blocks...
    False: dict(block_size=128, sparse_block_size=128, sparsity_factor=2, sparsity_type="norm",
                num_global_tokens=N_GLOBAL),
    True: dict(block_size=32, sparse_block_size=32, sparsity_factor=2, sparsity_type="norm",
               num_global_tokens=N_GLOBAL),
}
LONGFORMER_WINDOW = {False: 256, True: 64}
BIGBIRD = {False: dict(block_size=64, num_random_blocks=3), True: dict(block_size=16, num_random_blocks=3)}
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
BART = {
    False: dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072),
    True: dict(vocab_size=1000, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256),
}
BART_SPECIAL = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
                    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0,
                    decoder_layerdrop=0.0, activation_function="gelu", pass_global_tokens_to_decoder=True)


def keys_per_query(settings: "Settings") -> dict[str, int]:
    lsg, bb = LSG[settings.quick], BIGBIRD[settings.quick]
    return {
        "LSG": N_GLOBAL + 2 * lsg["sparse_block_size"] + 3 * lsg["block_size"],
        "Longformer": 2 * (settings.longformer_window // 2) + 1 + N_GLOBAL,
        "BigBird": (5 + bb["num_random_blocks"]) * bb["block_size"],
    }


# ---------------------------------------------------------------------------------------------
# Models


@dataclass
class Settings:
    quick: bool
    longest: int  # longest encoder input
    bart_length: int
    longformer_window: int
    generate_kwargs: dict

    @property
    def encoder(self) -> dict:
        geometry = dict(ENCODER[self.quick])
        geometry["max_position_embeddings"] = max(geometry.pop("max_tokens"), self.longest)
        return geometry

    def config_kwargs(self, impl: str) -> dict:
        """Config fields of one implementation: the shared encoder geometry + its attention pattern."""
        base = {**self.encoder, **NO_DROPOUT, "hidden_act": "gelu"}
        if impl in ("ours", PEER):
            return {**base, **LSG[self.quick]}
        if impl == "longformer":  # RoBERTa positions start at pad_token_id + 1 = 2: 2 rows more
            return {**base, "attention_window": self.longformer_window, "pad_token_id": 1, "type_vocab_size": 1,
                    "max_position_embeddings": base["max_position_embeddings"] + 2}
        if impl == "bigbird":
            return {**base, **BIGBIRD[self.quick], "attention_type": "block_sparse"}
        if impl == "bart":
            return {**BART[self.quick], **BART_SPECIAL, **LSG[self.quick], "max_position_embeddings": self.bart_length}
        raise ValueError(impl)

    def flops(self, impl: str, case: str, seq_len: int) -> float:
        """Counted useful FLOPs of one call (the harness's counts; x3 for a training step). NaN for
        bart_generate: decoder steps, beams and cross-attention are not counted (seconds only)."""
        geo, lsg, bart = self.encoder, LSG[self.quick], BART[self.quick]
        blocks = (lsg["block_size"], lsg["sparse_block_size"], N_GLOBAL)
        if case == "bart_generate":
            return math.nan
        if case == "bart_encode":
            dims = (seq_len, bart["encoder_layers"], bart["d_model"], bart["encoder_ffn_dim"])
            return harness.lsg_encoder_flops(*dims, *blocks)
        dims = (seq_len, geo["num_hidden_layers"], geo["hidden_size"], geo["intermediate_size"])
        if impl in ("ours", PEER):
            forward = harness.lsg_encoder_flops(*dims, *blocks)
        elif impl == "longformer":
            forward = harness.longformer_encoder_flops(*dims, self.longformer_window, N_GLOBAL,
                                                       geo["num_attention_heads"])
        else:
            forward = harness.bigbird_encoder_flops(*dims, BIGBIRD[self.quick]["block_size"],
                                                    BIGBIRD[self.quick]["num_random_blocks"])
        return forward * (harness.TRAIN_STEP_FLOP_FACTOR if case == "train_step_fp32" else 1)


def randomise_layer_norms(model: torch.nn.Module, seed: int = 1) -> None:
    """LayerNorm weight ~ N(1, 0.2), bias ~ N(0, 0.2): with the init's 1 and 0, last_hidden_state.sum()
    would be 0 whatever the input, and its gradient noise (the work is the same either way)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm) and module.elementwise_affine:
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))


def build_model(impl: str, settings: Settings) -> torch.nn.Module:
    """One implementation with random weights (seeded); `ours` is what lsg-converter loads."""
    import longdoc

    torch.manual_seed(0)
    kwargs = settings.config_kwargs(impl)
    if impl == "ours":
        model = longdoc.LSGBertModel(longdoc.LSGBertConfig(**kwargs))
    elif impl == "longformer":
        model = longdoc.LongformerModel(longdoc.LongformerConfig(**kwargs))
    elif impl == "bigbird":
        model = transformers.BigBirdModel(transformers.BigBirdConfig(**kwargs))
    elif impl == "bart":
        model = longdoc.LSGBartForConditionalGeneration(longdoc.LSGBartConfig(**kwargs))
    else:
        raise ValueError(impl)
    randomise_layer_norms(model)
    return model


def inputs_for(impl: str, case: str, seq_len: int, settings: Settings, device: str) -> dict:
    if case in BART_ROWS:
        return model_inputs(seq_len, BART[settings.quick]["vocab_size"], device, BART_SPECIAL["eos_token_id"])
    inputs = model_inputs(seq_len, settings.encoder["vocab_size"], device)
    if impl == "longformer":
        is_global = torch.zeros_like(inputs["attention_mask"])
        is_global[:, :N_GLOBAL] = 1
        inputs["global_attention_mask"] = is_global
    return inputs


def peer_request(case: str, seq_len: int, settings: Settings, **extra) -> dict:
    """A worker "run" request for one case."""
    bart = case in BART_ROWS
    return dict(op="run", case=case, seq_len=seq_len,
                vocab_size=(BART[settings.quick] if bart else settings.encoder)["vocab_size"],
                eos_token_id=BART_SPECIAL["eos_token_id"] if bart else None,
                generate_kwargs=settings.generate_kwargs if case == "bart_generate" else None, **extra)


def start_peer(args, family: str, checkpoint_dir: Path, peer_info: dict | None = None):
    """An lsg-converter worker with our `family` checkpoint loaded (its load reply into `peer_info`);
    without lsg-converter in --impls, a context that yields None."""
    if PEER not in args.impls:
        return contextlib.nullcontext()
    worker = PeerWorker(args.lsg_python, family, checkpoint_dir / f"lsg-{family}", torch.get_num_threads(), args.device)
    if peer_info is not None:
        peer_info.update(worker.info)
    return worker


# ---------------------------------------------------------------------------------------------
# Timing


def local_timer(impl: str, case: str, seq_len: int, model, settings: Settings, device: str, digests: dict):
    """A harness timer for `impl`'s workload in this process; keeps the first call's output digest."""
    fn = make_workload(case, model, inputs_for(impl, case, seq_len, settings, device), settings.generate_kwargs)

    def timer() -> float:
        seconds, output = harness.timed_call(fn, device)
        if impl not in digests:
            digests[impl] = output_digest(case, model, output)
        return seconds

    return timer


def peer_timer(worker: PeerWorker, case: str, seq_len: int, settings: Settings, digests: dict):
    def timer() -> float:
        reply = worker.request(**peer_request(case, seq_len, settings, calls=1, digest=PEER not in digests))
        if "digest" in reply:
            digests[PEER] = reply["digest"]
        return reply["seconds"][0]

    return timer


def time_one(case: str, seq_len: int, models: dict, worker: PeerWorker | None, args, settings: Settings,
             peak: float) -> list[Row]:
    """Rows of every implementation on one case and length, timed together (A B ... B A): the
    `models` ({impl: model}) in this process, lsg-converter in `worker` (if not None)."""
    digests: dict = {}
    timers = {impl: local_timer(impl, case, seq_len, model, settings, args.device, digests)
              for impl, model in models.items()}
    order = [impl for impl in IMPLS if impl in timers or (impl == PEER and worker is not None)]
    notes = {}
    if worker is not None:
        if not worker.alive():  # died on an earlier case
            worker.close()
            worker.start()
        timers[PEER] = peer_timer(worker, case, seq_len, settings, digests)
    timers = {name: timers[name] for name in order}
    try:
        seconds, rounds = harness.time_interleaved_timers(timers, args.rounds, args.case_budget_s)
    except WorkerError as error:  # e.g. out of memory in the worker: time the others without it
        print(f"{case} T={seq_len}: {error}", flush=True)
        notes[PEER] = f"failed: {str(error).strip().splitlines()[-1][:120]}"
        timers.pop(PEER)
        seconds, rounds = harness.time_interleaved_timers(timers, args.rounds, args.case_budget_s)
    rows = []
    for impl in order:
        if impl not in seconds:
            rows.append(Row(case, seq_len, impl, None, note=notes.get(impl, "")))
            continue
        m = harness.Measurement(seconds[impl], seq_len, settings.flops(impl, case, seq_len), peak)
        rows.append(Row(case, seq_len, impl, m, rounds, digest=digests.get(impl)))
    ours = next((r for r in rows if r.impl == "ours"), None)
    if ours and PEER in digests and "ours" in digests:
        same = digests_agree(digests["ours"], digests[PEER])
        what = "tokens" if case == "bart_generate" else "outputs"
        ours.note = f"same {what} as {PEER}" if same else f"{what.upper()} DIFFER from {PEER}"
        print(f"  digest ours {digests['ours']}\n  digest {PEER} {digests[PEER]}", flush=True)
    print(f"{case} T={seq_len} ({rounds} rounds): " + ", ".join(f"{k} {v:.4g} s" for k, v in seconds.items()),
          flush=True)
    return rows


def skipped(case: str, seq_len: int, impls: list[str], flops: float, peak: float, args) -> list[Row] | None:
    if flops / (peak * 1e9) <= args.max_call_seconds:
        return None
    note = f"skipped: {flops / 1e9:.0f} GFLOP at the {peak:.1f} GFLOP/s peak > {args.max_call_seconds:.0f} s"
    print(f"{case} T={seq_len}: {note}", flush=True)
    return [Row(case, seq_len, impl, None, note=note) for impl in impls]


def time_encoder_cases(args, settings: Settings, lengths: tuple, checkpoint_dir: Path, peak: float,
                       peer_info: dict) -> list[Row]:
    ours = build_model("ours", settings).to(args.device)
    ours.save_pretrained(checkpoint_dir / "lsg-bert")
    models = {impl: (ours if impl == "ours" else build_model(impl, settings).to(args.device))
              for impl in args.impls if impl != PEER}
    rows = []
    with start_peer(args, "bert", checkpoint_dir, peer_info) as worker:
        for case in (c for c in args.cases if c in ENCODER_CASES):
            for seq_len in lengths:
                too_slow = skipped(case, seq_len, list(args.impls), settings.flops("ours", case, seq_len), peak, args)
                if too_slow:
                    rows += too_slow
                    continue
                rows += time_one(case, seq_len, models, worker, args, settings, peak)
                gc.collect()
    return rows


def time_bart(args, settings: Settings, checkpoint_dir: Path, peak: float, peer_info: dict) -> list[Row]:
    rows, seq_len = [], settings.bart_length
    impls = [impl for impl in ("ours", PEER) if impl in args.impls or impl == "ours"]
    too_slow = skipped("bart_encode", seq_len, impls, settings.flops("ours", "bart_encode", seq_len), peak, args)
    if too_slow:
        return too_slow + [Row("bart_generate", seq_len, impl, None, note="skipped with bart_encode") for impl in impls]
    ours = build_model("bart", settings).to(args.device)
    ours.save_pretrained(checkpoint_dir / "lsg-bart")
    with start_peer(args, "bart", checkpoint_dir, peer_info) as worker:
        for case in BART_ROWS:
            rows += time_one(case, seq_len, {"ours": ours}, worker, args, settings, peak)
    return rows


# ---------------------------------------------------------------------------------------------
# Memory: one fresh process per row (our side: `--memory-probe`, a fresh lsg-converter worker)


def run_memory_probe(spec: dict) -> None:
    """In a fresh interpreter: build one implementation, set up the case, measure one call."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    settings = Settings(**spec["settings"])
    case, impl, device = spec["case"], spec["impl"], spec["device"]
    model = build_model("bart" if case in BART_ROWS else impl, settings).to(device)
    workload = make_workload(case, model, inputs_for(impl, case, spec["seq_len"], settings, device),
                             settings.generate_kwargs)
    harness.report_memory_probe(harness.measure_peak_memory(workload, device))


def probe_row(row: Row, args, settings: Settings, checkpoint_dir: Path) -> dict:
    if row.impl == PEER:
        family = "bart" if row.case in BART_ROWS else "bert"
        with start_peer(args, family, checkpoint_dir) as worker:
            reply = worker.request(**peer_request(row.case, row.seq_len, settings, memory=True))
        return {"peak_bytes": reply["peak_bytes"], "method": reply["memory_method"]}
    spec = dict(case=row.case, seq_len=row.seq_len, impl=row.impl, device=args.device,
                threads=torch.get_num_threads(), settings=settings.__dict__)
    return harness.probe_memory_in_subprocesses(__file__, [spec], jobs=1)[0]


def measure_memory(rows: list[Row], args, settings: Settings, checkpoint_dir: Path) -> str:
    """Fills in peak_bytes of every timed row (with --quick only at each case's longest length:
    every probe pays the imports); returns the methods used."""
    measured = [row for row in rows if row.measurement is not None]
    if args.quick:
        longest_of = {}
        for row in measured:
            longest_of[row.case] = max(longest_of.get(row.case, 0), row.seq_len)
        measured = [row for row in measured if row.seq_len == longest_of[row.case]]

    def probe(row: Row):
        try:
            return probe_row(row, args, settings, checkpoint_dir)
        except (RuntimeError, KeyError) as error:  # one failed probe (e.g. out of memory) leaves the others
            print(f"memory {row.case} T={row.seq_len} {row.impl}: {error}", flush=True)
            return error

    return harness.fill_peak_memory(measured, probe, args.memory_jobs)


# ---------------------------------------------------------------------------------------------
# Main run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--lengths", nargs="+", type=int,
                        help="encoder lengths for infer_fp32 and train_step_fp32 "
                             "(default 4096 16384; --quick 512 1024)")
    parser.add_argument("--bart-length", type=int, help="bart_16k input tokens (default 16384; --quick 1024)")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS),
                        help="implementations to run (bart_16k: ours and lsg-converter only)")
    parser.add_argument("--rounds", type=int, help="A B B A rounds after the warm-up (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int,
                        help="torch threads, the lsg-converter worker gets the same (default: one per core; 1 with "
                             "--quick, whose tiny matmuls gain nothing from threads)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 tiny layers (hidden 64, LSG block 32), lengths 512 and 1024, BART 2+2 tiny "
                             "layers on 1024 tokens, 1 round, memory at the longest length only")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "lsg", help="results directory")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory probes")
    parser.add_argument("--memory-jobs", type=int,
                        help="memory probes run side by side (default 1: the 16k training probes can each take a "
                             "large share of the RAM; 2 with --quick)")
    parser.add_argument("--case-budget-s", type=float, default=1800.0,
                        help="timing budget per case and length: slow cases get fewer rounds, at least 1")
    parser.add_argument("--max-call-seconds", type=float, default=600.0,
                        help="skip a case whose (ours) FLOPs at the measured peak already take longer than this "
                             "per call")
    parser.add_argument("--longformer-window", type=int,
                        help="Longformer attention_window, both sides together (default 256; --quick 64)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="bart_generate: tokens generated (exactly)")
    parser.add_argument("--num-beams", type=int, default=2, help="bart_generate: beams")
    parser.add_argument("--lsg-python", type=Path, default=DEFAULT_LSG_PYTHON,
                        help=f"python of the lsg-converter virtualenv (default {DEFAULT_LSG_PYTHON}; "
                             "env LONGDOC_LSG_ORACLE)")
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
    if args.lengths and min(args.lengths) < 1:
        parser.error(f"--lengths must be positive, got {args.lengths}")
    args.impls = [impl for impl in IMPLS if impl in args.impls]
    return args


def run_context(args, settings: Settings, lengths: tuple, peak: float, memory_methods: str, peer_info: dict) -> dict:
    """What a reader needs to interpret and reproduce the numbers (goes into the .md)."""
    keys = keys_per_query(settings)
    enc = settings.encoder
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description(args.device),
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__} (ours, longformer, "
                    f"bigbird); {PEER} worker: {peer_info.get('versions', 'not run')}; "
                    f"longdoc code {harness.code_version()}",
        "matmul peak GFLOP/s": f"fp32 {peak:.1f}",
        "encoder geometry": {k: enc[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                                  "intermediate_size", "vocab_size", "max_position_embeddings")},
        "attention": f"LSG {LSG[settings.quick]}; Longformer attention_window {settings.longformer_window}, "
                     f"{N_GLOBAL} global token; BigBird block_sparse {BIGBIRD[settings.quick]}",
        "keys per token query": ", ".join(f"{k} {v}" for k, v in keys.items()),
        "bart_16k": f"{BART[settings.quick]}, max_position_embeddings {settings.bart_length}, same LSG settings, "
                    f"{settings.bart_length} input tokens; generate {settings.generate_kwargs}",
        "inputs": "batch 1, no padding, random ids; random weights (ours saved and loaded by lsg-converter: the "
                  "same weights), LayerNorms randomised; every dropout probability 0",
        "lengths": f"infer_fp32 / train_step_fp32 {list(lengths)}",
        "timing": f"1 warm-up, then up to {args.rounds} rounds of A B .. B A over the implementations (fewer when a "
                  f"case would take over {args.case_budget_s:.0f} s; see rounds); median s per call; "
                  f"{PEER} timed inside its worker (one request per call)",
        "memory": "peak growth of one call over the set-up, a fresh process per row "
                  f"(peak read from {memory_methods})",
        "MFU": "counted useful FLOPs (harness: lsg_encoder_flops, longformer_encoder_flops, bigbird_encoder_flops; "
               "x3 for a training step) / time / fp32 peak; not counted for bart_generate",
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    command = harness.setup_run(args, run_memory_probe)
    if command is None:  # a memory-probe child
        return
    lengths = tuple(args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS))
    settings = Settings(
        quick=args.quick, longest=max(lengths),
        bart_length=args.bart_length or (QUICK_BART_LENGTH if args.quick else DEFAULT_BART_LENGTH),
        longformer_window=args.longformer_window or LONGFORMER_WINDOW[args.quick],
        generate_kwargs=dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens,
                             num_beams=args.num_beams, do_sample=False, no_repeat_ngram_size=0, length_penalty=1.0,
                             early_stopping=False, use_cache=True),
    )
    peak = harness.matmul_peak_gflops(torch.float32, args.device, min_seconds=0.05 if args.quick else 0.2)
    print(f"matmul peak GFLOP/s: fp32 {peak:.1f}", flush=True)
    rows, peer_info = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_lsg_") as tmp:
        checkpoint_dir = Path(tmp)
        if any(case in ENCODER_CASES for case in args.cases):
            rows += time_encoder_cases(args, settings, lengths, checkpoint_dir, peak, peer_info)
        if "bart_16k" in args.cases:
            rows += time_bart(args, settings, checkpoint_dir, peak, peer_info)
        memory_methods = "not measured (--skip-memory)"
        if not args.skip_memory:
            print("peak memory: one fresh process per row...", flush=True)
            memory_methods = measure_memory(rows, args, settings, checkpoint_dir)
    fill_ratios(rows)
    print()
    print(format_table(rows))
    print("\n".join(target_summary(rows)))
    stem = "lsg" + ("_quick" if args.quick else "")
    context = run_context(args, settings, lengths, peak, memory_methods, peer_info)
    for path in write_results(rows, stem, args.out, command, context):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
