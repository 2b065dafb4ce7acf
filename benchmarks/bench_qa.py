"""Long-document question answering: one question over a context of 4096 or 16384 tokens, answered
end to end (tokenizing, windows or segments, the model, the span search), ours against transformers
4.57's question-answering pipeline on the same Longformer weights, in the same run.

Implementations (one result row each per context length):
  ours               longdoc's LongformerForQuestionAnswering through longdoc's QuestionAnswerer
                     (`longdoc.pipelines.qa`; `--ours-via parts`: composed of `longdoc.data.qa_windows`, the
                     model and `longdoc.data.qa_spans`, the same windows and decoding), fp32
  transformers-4.57  transformers 4.57.6's LongformerForQuestionAnswering loaded from ours's saved folder,
                     run through ITS pipeline("question-answering") in a worker under .venv-qa (qa_peer.py)
  ours-bf16          ours under bf16 autocast: the QuestionAnswerer's default on CPUs with bf16 units
  lsg                longdoc's LSGRobertaForQuestionAnswering (block 128, sparse block 128, factor 2, norm,
                     1 global token, the question attended globally), the same windows as the Longformers
  hat                longdoc's HATForQuestionAnswering (S|S|SD x 4, segments of 128 tokens, the question in
                     every segment: `longdoc.data.hat_qa`), the whole context as one input
Shared geometry: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 50265, RoBERTa specials; random weights
(seed 0, LayerNorms randomised: bench_lsg's reason), every dropout probability 0, fp32, eval mode.
Longformer: attention_window 512, 4096 positions. Windows, both Longformers and LSG: max_seq_len 4096,
doc_stride 512, all windows of a question in one batch (`--batch-windows` to cap it), max_answer_len 30,
top_k 1, whole words. The note of ours says whether ours and the pipeline gave the same answer.

Text: the Python FAQ pages of python3.11-doc (`longdoc.datasets.python_faq`, built from the Debian package
on first use), a byte-level BPE tokenizer trained on them (saved as a RoBERTa fast tokenizer in every
model folder), one real FAQ question, and a context that starts at its page and runs on through the other
pages, cut to exactly 4096 / 16384 tokens.

Target (ours / transformers-4.57): tokens/s >= 2x at peak memory <= 0.5x.

Timing: harness.time_interleaved_timers, A B .. B A over the implementations, median s per call; the
pipeline is asked for one call at a time and timed inside its worker. `--clock cpu` (with `--threads 1`) times by CPU time, for a
machine shared with other jobs. Peak memory: a fresh process per row (`--memory-probe`; the peer: a fresh
worker), harness.measure_peak_memory. tok/s counts context tokens (windows overlap and the question is
read again in every window or segment: the model reads more). MFU: the harness's FLOP counts over the
tokens each model really reads (padding left out) / time / fp32 matmul peak.

Run from the repository root:
  .venv/bin/python benchmarks/bench_qa.py --quick                               # tiny geometry: a smoke test
  .venv/bin/python benchmarks/bench_qa.py --threads 1 --clock cpu --rounds 2    # base geometry, 4096 and 16384
Results: benchmarks/results/qa/qa[_quick].{csv,md,png}.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import transformers

import harness
from bench_longformer import ROBERTA_SPECIAL
from bench_lsg import NO_DROPOUT, randomise_layer_norms
from qa_peer import PEER, QAPeer, WorkerError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QA_PYTHON = Path(os.environ.get("LONGDOC_QA_ORACLE", ROOT / ".venv-qa" / "bin" / "python"))
IMPLS = ("ours", PEER, "ours-bf16", "lsg", "hat")
FOLDER_OF = {"ours": "ours", "ours-bf16": "ours", "lsg": "lsg", "hat": "hat"}  # ours-bf16: ours's weights
CASE = "answer_fp32"
DEFAULT_LENGTHS, QUICK_LENGTHS = (4096, 16384), (512, 1024)
TARGETS = {CASE: {"speed": 2.0, "memory": 0.5}}  # ours / transformers-4.57
TOKENIZER_VOCAB = 8192  # the BPE's size; the models' embedding tables keep the geometry's 50265 rows
GEOMETRY = {
    False: dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                vocab_size=50265),
    True: dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
               vocab_size=50265),
}
WINDOWS = {False: dict(max_length=4096, doc_stride=512, attention_window=512),
           True: dict(max_length=256, doc_stride=64, attention_window=64)}
LSG = {False: dict(block_size=128, sparse_block_size=128, sparsity_factor=2, sparsity_type="norm", num_global_tokens=1),
       True: dict(block_size=32, sparse_block_size=32, sparsity_factor=2, sparsity_type="norm", num_global_tokens=1)}
HAT = {False: dict(encoder_layout="|".join(["S", "S", "SD"] * 4), max_sentence_size=128),
       True: dict(encoder_layout="S|SD", max_sentence_size=64)}
COLOURS = {"ours": "tab:blue", PEER: "tab:orange", "ours-bf16": "tab:cyan", "lsg": "tab:green", "hat": "tab:red"}
TABLE_COLUMNS = (  # (header, key of Row.values)
    ("T", "seq_len"), ("impl", "impl"), ("rounds", "rounds"), ("s/call", "s_per_call"), ("tok/s", "tokens_per_s"),
    ("MFU%", "mfu_pct"), ("MiB", "peak_mib"), ("GFLOP", "gflop_per_call"), ("speed x", "speed_vs_transformers"),
    ("mem x", "memory_vs_transformers"), ("target", "target"), ("note", "note"),
)
fmt = harness.format_value


@dataclass
class Settings:
    quick: bool
    max_length: int  # window length (tokens), Longformer / LSG / the pipeline
    doc_stride: int
    attention_window: int
    max_answer_len: int
    batch_windows: int | None  # windows per forward; None: all of a question's windows at once
    ours_via: str = "pipeline"  # our side through longdoc's QuestionAnswerer, or composed of its parts

    @property
    def geometry(self) -> dict:
        return GEOMETRY[self.quick]

    @property
    def pipeline_kwargs(self) -> dict:
        return dict(max_seq_len=self.max_length, doc_stride=self.doc_stride, max_answer_len=self.max_answer_len,
                    top_k=1, handle_impossible_answer=False, align_to_words=True)


# ---------------------------------------------------------------------------------------------
# Text, tokenizer, models


def faq_pages() -> tuple[dict[str, str], dict, dict]:
    """({page: text} in the set's page order, the question record, the set's manifest): the question is the
    first of the page with the longest text."""
    from longdoc.datasets.python_faq import ensure_python_faq

    folder = ensure_python_faq()
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    records = [json.loads(line) for split in ("train", "dev", "test")
               for line in (folder / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    texts = {record["page"]: record["context"] for record in records}
    pages = {page: texts[page] for page in manifest["rules"]["pages"] if page in texts}
    longest = max(pages, key=lambda page: len(pages[page]))
    question = next(record for record in records if record["page"] == longest)
    return pages, question, manifest


def train_tokenizer(pages: dict[str, str], folder: Path, max_length: int):
    """A byte-level BPE trained on the pages, as transformers' RoBERTa (fast) tokenizer."""
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(pages.values()), vocab_size=TOKENIZER_VOCAB, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    vocab, merges = bpe.save_model(str(folder))
    tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    Path(vocab).unlink()
    Path(merges).unlink()
    tokenizer.model_max_length = max_length
    specials = {name: getattr(tokenizer, f"{name}_token_id") for name in ("bos", "pad", "eos", "sep")}
    expected = {name: ROBERTA_SPECIAL[f"{name}_token_id"] for name in specials}
    if specials != expected or not tokenizer.is_fast:
        raise RuntimeError(f"the trained tokenizer's special ids {specials} (fast: {tokenizer.is_fast}) are not "
                           f"RoBERTa's {expected}")
    return tokenizer


def context_of_tokens(tokenizer, pages: dict[str, str], first_page: str, tokens: int) -> str:
    """The pages from `first_page` on (then the others, in order), cut where the text is exactly `tokens`
    tokens long (cuts at token ends near the goal are tried until re-tokenizing gives that count)."""
    order = [first_page] + [page for page in pages if page != first_page]
    text = "\n\n".join(pages[page] for page in order)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) < tokens + 8:
        raise ValueError(f"the FAQ pages give {len(offsets)} tokens, fewer than the {tokens} asked for: ask for fewer")
    for shift in (0, 1, -1, 2, -2, 3, -3, 4, -4):
        cut = text[:offsets[tokens - 1 + shift][1]].rstrip()
        if len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == tokens:
            return cut
    raise RuntimeError(f"no cut near token {tokens} re-tokenizes to exactly {tokens} tokens")


def config_of(impl: str, settings: Settings, hat_segments: int):
    import longdoc

    base = {**ROBERTA_SPECIAL, **NO_DROPOUT, **settings.geometry, "num_labels": 2}
    positions = settings.max_length + ROBERTA_SPECIAL["pad_token_id"] + 1  # RoBERTa positions start at pad + 1
    if impl == "ours":
        return longdoc.LongformerConfig(**base, attention_window=settings.attention_window,
                                        max_position_embeddings=positions)
    if impl == "lsg":
        return longdoc.LSGRobertaConfig(**base, **LSG[settings.quick], max_position_embeddings=positions)
    if impl == "hat":
        hat = HAT[settings.quick]
        return longdoc.HATConfig(**base, **hat, max_sentences=hat_segments,
                                 model_max_length=hat_segments * hat["max_sentence_size"])
    raise ValueError(impl)


def save_model(impl: str, settings: Settings, tokenizer, folder: Path, hat_segments: int) -> None:
    """Random weights (seed 0, LayerNorms randomised) of one of our QA models, saved with its tokenizer."""
    import longdoc

    classes = {"ours": longdoc.LongformerForQuestionAnswering, "lsg": longdoc.LSGRobertaForQuestionAnswering,
               "hat": longdoc.HATForQuestionAnswering}
    torch.manual_seed(0)
    model = classes[impl](config_of(impl, settings, hat_segments))
    randomise_layer_norms(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_model(impl: str, folder: Path):
    import longdoc

    classes = {"ours": longdoc.LongformerForQuestionAnswering, "lsg": longdoc.LSGRobertaForQuestionAnswering,
               "hat": longdoc.HATForQuestionAnswering}
    model = classes[FOLDER_OF[impl]].from_pretrained(folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------
# Workloads: question and context in, the best answer out


def window_answerer(model, tokenizer, settings: Settings, longformer: bool, bf16: bool):
    """`--ours-via parts`: windows of the pair (the pipeline's), a forward over them in batches, the
    pipeline's span decoding."""
    from longdoc.data.qa_spans import best_answers
    from longdoc.data.qa_windows import batch_inputs, question_answer_windows

    names = ("input_ids", "attention_mask") + (("global_attention_mask",) if longformer else ())

    def answer(question: str, context: str) -> dict:
        windows = question_answer_windows(tokenizer, [question], [context], settings.max_length, settings.doc_stride)
        batch = {name: torch.from_numpy(array) for name, array in
                 batch_inputs(windows, tokenizer.pad_token_id, names).items()}
        step = settings.batch_windows or len(windows)
        starts, ends = [], []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for first in range(0, len(windows), step):
                output = model(**{name: tensor[first:first + step] for name, tensor in batch.items()})
                starts.append(output.start_logits.float().numpy())
                ends.append(output.end_logits.float().numpy())
        return best_answers(np.concatenate(starts), np.concatenate(ends), windows, [context], top_k=1,
                            max_answer_len=settings.max_answer_len)[0][0]

    return answer


def hat_answerer(model, tokenizer, settings: Settings):
    """`--ours-via parts`: the pair as HAT segments (the question in each), one forward, the best span."""
    from longdoc.data.hat_qa import batch_hat_qa, best_answer_span, hat_qa_input

    def answer(question: str, context: str) -> dict:
        item = hat_qa_input(question, context, tokenizer, model.config.max_sentence_size, model.config.max_sentences)
        with torch.inference_mode():
            output = model(**batch_hat_qa([item], tokenizer.pad_token_id))
        span = best_answer_span(output.start_logits[0], output.end_logits[0], item, settings.max_answer_len)
        return {"answer": context[span.start:span.end], "score": span.score, "start": span.start, "end": span.end}

    return answer


def pipeline_answerer(impl: str, folder: Path, settings: Settings):
    """`--ours-via pipeline`: longdoc's QuestionAnswerer on the saved folder, fp32 unless impl is ours-bf16
    (its default on CPUs with bf16 units), all windows of a question in one batch (or --batch-windows)."""
    from longdoc.pipelines.qa import QuestionAnswerer

    options = dict(top_k=1, max_answer_len=settings.max_answer_len, align_to_words=True)
    if impl != "hat":  # a HAT reads the whole context: its window is the model's length
        options.update(max_length=settings.max_length, doc_stride=settings.doc_stride)
    qa = QuestionAnswerer.from_pretrained(folder, device="cpu", bf16=impl == "ours-bf16",
                                          batch_tokens=settings.max_length * (settings.batch_windows or 10**4),
                                          **options)

    def answer(question: str, context: str) -> dict:
        return qa(question=question, context=context)

    return answer


def answerer(impl: str, folder: Path, settings: Settings):
    """A function (question, context) -> {"answer", "score", "start", "end"} for one of our implementations."""
    if settings.ours_via == "pipeline":
        return pipeline_answerer(impl, folder, settings)
    model, tokenizer = load_model(impl, folder)
    if impl == "hat":
        return hat_answerer(model, tokenizer, settings)
    return window_answerer(model, tokenizer, settings, longformer=impl.startswith("ours"), bf16=impl == "ours-bf16")


def compare_answers(ours: dict, peer: dict, rel: float = 1e-3) -> str:
    """How our answer compares with the pipeline's: the same when the characters of the context agree and
    the scores are within `rel` (fp32 sums in another order); bf16 keeps the span but moves the score more."""
    if (ours["start"], ours["end"], ours["answer"]) != (peer["start"], peer["end"], peer["answer"]):
        return f"ANSWER DIFFERS from {PEER} (chars {ours['start']}-{ours['end']} vs {peer['start']}-{peer['end']})"
    off = abs(ours["score"] - peer["score"]) / max(abs(ours["score"]), abs(peer["score"]))
    scores = f"score {ours['score']:.6g} vs {peer['score']:.6g}"
    if off <= rel:
        return f"same answer as {PEER} ({scores})"
    return f"same span as {PEER}, score {100 * off:.2f}% off ({scores})"


# ---------------------------------------------------------------------------------------------
# What the models read, and its FLOPs


def read_shape(impl: str, tokenizer, question: str, context: str, settings: Settings, hat_segments: int) -> dict:
    """{"pieces": windows (or HAT segments), "lengths": their real tokens, "globals": global tokens per piece}."""
    if impl == "hat":
        from longdoc.data.hat_qa import hat_qa_input

        size = HAT[settings.quick]["max_sentence_size"]
        if settings.ours_via == "pipeline":  # its HAT windows: the whole context in one where it fits
            from longdoc.data.hat_qa_windows import hat_windows

            items = [w.inputs for w in hat_windows(tokenizer, [question], [context], size, hat_segments, None)]
        else:
            items = [hat_qa_input(question, context, tokenizer, size, hat_segments)]
        return {"pieces": sum(item.num_segments for item in items),
                "lengths": [item.num_segments * item.segment_size for item in items], "globals": [0] * len(items)}
    from longdoc.data.qa_windows import question_answer_windows

    windows = question_answer_windows(tokenizer, [question], [context], settings.max_length, settings.doc_stride)
    return {"pieces": len(windows), "lengths": [len(w) for w in windows],
            "globals": [sum(w.global_attention_mask) for w in windows]}


def flops(impl: str, shape: dict, settings: Settings) -> float:
    """Useful forward FLOPs of one call, over the real tokens of every window (padding left out): the
    question's tokens are global in every window (Longformer: global attention; LSG: extra global slots)."""
    geo = settings.geometry
    dims = (geo["num_hidden_layers"], geo["hidden_size"], geo["intermediate_size"])
    if impl == "hat":
        hat = HAT[settings.quick]
        return sum(harness.hat_encoder_flops(length, hat["encoder_layout"], geo["hidden_size"],
                                             geo["intermediate_size"], hat["max_sentence_size"])
                   for length in shape["lengths"])
    total = 0.0
    for length, n_global in zip(shape["lengths"], shape["globals"]):
        if impl == "lsg":
            lsg = LSG[settings.quick]
            total += harness.lsg_encoder_flops(length, *dims, lsg["block_size"], lsg["sparse_block_size"],
                                               lsg["num_global_tokens"] + n_global - 1)  # <s> is among the globals
        else:
            total += harness.longformer_encoder_flops(length, *dims, settings.attention_window, n_global,
                                                      geo["num_attention_heads"])
    return total


# ---------------------------------------------------------------------------------------------
# Rows


class Row(harness.ImplRow):
    peer_column = "transformers"
    gflop_pattern = "{:.3g}"

    def target(self) -> str:
        goals = TARGETS.get(self.case) if self.impl == "ours" else None
        if not goals:
            return ""

        def verdict(ratio, ok) -> str:
            return "n/a" if ratio is None else "met" if ok else "MISSED"

        speed = verdict(self.speed_ratio, self.speed_ratio is not None and self.speed_ratio >= goals["speed"])
        memory = verdict(self.memory_ratio, self.memory_ratio is not None and self.memory_ratio <= goals["memory"])
        return f"speed>={goals['speed']}x {speed}, mem<={goals['memory']}x {memory}"


def target_summary(rows: list[Row]) -> list[str]:
    return [f"- T={row.seq_len}: ours/{PEER} speed {fmt(row.speed_ratio, '{:.2f}x') or 'n/a'}, memory "
            f"{fmt(row.memory_ratio, '{:.2f}x') or 'not measured'}: {row.target()}" for row in rows if row.target()]


def format_table(rows: list[Row]) -> str:
    return harness.format_columns([row.values() for row in rows], TABLE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Timing and memory


def clock_of(args):
    return time.process_time if args.clock == "cpu" else time.perf_counter


def time_length(seq_len: int, workload: Path, folders: dict[str, Path], args, settings: Settings, peaks: dict,
                shapes: dict) -> list[Row]:
    """Rows of every implementation on one context length, timed together (A B C D D C B A)."""
    case = json.loads(workload.read_text())
    answers, timers, clock = {}, {}, clock_of(args)
    for impl in args.impls:
        if impl == PEER:
            continue
        fn = answerer(impl, folders[FOLDER_OF[impl]], settings)

        def timer(fn=fn, impl=impl) -> float:
            seconds, answers[impl] = harness.timed_call(lambda: fn(case["question"], case["context"]), "cpu", clock)
            return seconds

        timers[impl] = timer
    peer, notes = None, {}
    if PEER in args.impls:
        peer = QAPeer(args.qa_python, folders["ours"], torch.get_num_threads(), args.clock)
        args.peer_info = peer.info

        def peer_timer() -> float:
            reply = peer.request(op="run", workload=str(workload), pipeline_kwargs=peer_kwargs(settings, shapes),
                                 calls=1)
            answers[PEER] = reply["answer"]
            return reply["seconds"][0]

        timers[PEER] = peer_timer
    samples: dict[str, list[float]] = {impl: [] for impl in timers}  # every call, the warm-up first

    def kept(impl: str, timer):
        def run() -> float:
            samples[impl].append(timer())
            return samples[impl][-1]
        return run

    timers = {impl: kept(impl, timers[impl]) for impl in args.impls}
    try:
        with harness.InterferenceMonitor() as monitor:
            try:
                seconds, rounds = harness.time_interleaved_timers(timers, args.rounds, args.case_budget_s)
            except WorkerError as error:  # e.g. out of memory in the worker: time the others without it
                print(f"T={seq_len}: {error}", flush=True)
                notes[PEER] = f"failed: {str(error).strip().splitlines()[-1][:120]}"
                timers.pop(PEER)
                samples = {impl: [] for impl in timers}
                seconds, rounds = harness.time_interleaved_timers(timers, args.rounds, args.case_budget_s)
    finally:
        if peer is not None:
            peer.close()
    samples = {impl: times[1:] for impl, times in samples.items()}  # the warm-up left out
    args.interference[seq_len] = monitor.result.describe() + (
        f"; disturbed: {'; '.join(reasons)}" if (reasons := harness.disturbed_reasons(samples, monitor.result)) else "")
    rows = []
    for impl in args.impls:
        shape = shapes[impl]
        what = "segments" if impl == "hat" else "windows"
        note = f"{shape['pieces']} {what}, {sum(shape['lengths'])} tokens read"
        if impl in answers:
            a = answers[impl]
            note += f"; answer chars {a['start']}-{a['end']}"
        if impl.startswith("ours") and PEER in answers and impl in answers:
            note += "; " + compare_answers(answers[impl], answers[PEER])
        spread = harness.relative_spread(samples.get(impl))
        if spread is not None:
            note += f"; spread {100 * spread:.0f}%"
        if impl in notes:
            note += "; " + notes[impl]
        m = None
        if impl in seconds:
            peak = peaks[torch.bfloat16 if impl == "ours-bf16" else torch.float32]
            m = harness.Measurement(seconds[impl], seq_len, flops(impl, shape, settings), peak, samples=samples[impl])
        rows.append(Row(CASE, seq_len, impl, m, rounds if m else 0, note=note))
    print(f"T={seq_len} ({rounds} rounds): " + ", ".join(f"{k} {v:.4g} s" for k, v in seconds.items()), flush=True)
    print("  answers: " + json.dumps(answers), flush=True)
    return rows


def peer_kwargs(settings: Settings, shapes: dict) -> dict:
    """The pipeline's settings: ours's windows, and the same number of windows per forward."""
    pieces = shapes["ours"]["pieces"]
    return {**settings.pipeline_kwargs, "batch_size": min(settings.batch_windows or pieces, pieces)}


def run_memory_probe(spec: dict) -> None:
    """In a fresh interpreter: load one implementation, measure one call."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    settings = Settings(**spec["settings"])
    case = json.loads(Path(spec["workload"]).read_text())
    fn = answerer(spec["impl"], Path(spec["folder"]), settings)
    harness.report_memory_probe(harness.measure_peak_memory(lambda: fn(case["question"], case["context"])))


def measure_memory(rows: list[Row], workloads: dict, folders: dict, args, settings: Settings, shapes: dict) -> str:
    """Peak memory growth of one call for every timed row, each in a fresh process; returns the methods."""
    def probe(row: Row):
        try:
            if row.impl == PEER:
                with QAPeer(args.qa_python, folders["ours"], torch.get_num_threads(), args.clock) as worker:
                    reply = worker.request(op="run", workload=str(workloads[row.seq_len]), memory=True,
                                           pipeline_kwargs=peer_kwargs(settings, shapes[row.seq_len]), calls=0)
                return {"peak_bytes": reply["peak_bytes"], "method": reply["memory_method"]}
            spec = dict(impl=row.impl, folder=str(folders[FOLDER_OF[row.impl]]), workload=str(workloads[row.seq_len]),
                        threads=torch.get_num_threads(), settings=asdict(settings))
            return harness.probe_memory_in_subprocesses(__file__, [spec], jobs=1)[0]
        except (RuntimeError, KeyError) as error:  # one failed probe (e.g. out of memory) leaves the others
            print(f"memory T={row.seq_len} {row.impl}: {error}", flush=True)
            return error

    return harness.fill_peak_memory([row for row in rows if row.measurement is not None], probe, args.memory_jobs)


# ---------------------------------------------------------------------------------------------
# Main run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", type=int, help="context tokens (default 4096 16384; --quick 512 1024)")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--rounds", type=int, help="A B B A rounds after the warm-up (default 2, 1 with --quick)")
    parser.add_argument("--threads", type=int,
                        help="torch threads, the peer worker gets the same (default: one per core; 1 with --quick)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (needs --threads 1): for a shared machine")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 tiny layers (hidden 64), windows of 256 tokens (stride 64, Longformer "
                             "window 64, LSG block 32, HAT segments of 64), contexts of 512 and 1024 tokens, 1 round")
    parser.add_argument("--ours-via", choices=("pipeline", "parts"),
                        default="pipeline" if importlib.util.find_spec("longdoc.pipelines.qa") else "parts",
                        help="our side through longdoc's QuestionAnswerer (the default where longdoc has it), or "
                             "composed of the QA windows, the model and the span decoding")
    parser.add_argument("--batch-windows", type=int, help="windows per forward, both sides (default: all at once)")
    parser.add_argument("--max-answer-len", type=int, default=30, help="longest answer in tokens, every side")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "qa", help="results directory")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory probes")
    parser.add_argument("--memory-jobs", type=int, default=1, help="memory probes run side by side")
    parser.add_argument("--case-budget-s", type=float, default=1800.0,
                        help="timing budget per length: slow lengths get fewer rounds, at least 1")
    parser.add_argument("--qa-python", type=Path, default=DEFAULT_QA_PYTHON,
                        help=f"python of the transformers 4.57 virtualenv (default {DEFAULT_QA_PYTHON}; "
                             "env LONGDOC_QA_ORACLE)")
    parser.add_argument(harness.MEMORY_PROBE_FLAG, dest="memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.threads is None and args.quick:
        args.threads = 1
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.lengths and min(args.lengths) < 1:
        parser.error(f"--lengths must be positive, got {args.lengths}")
    if args.batch_windows is not None and args.batch_windows < 1:
        parser.error(f"--batch-windows must be at least 1, got {args.batch_windows}")
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1 (with more threads CPU time counts their spin-waits)")
    args.impls = [impl for impl in IMPLS if impl in args.impls]
    args.peer_info, args.interference = {}, {}
    return args


def run_context(args, settings: Settings, lengths, peaks: dict, memory_methods: str, question: dict,
                manifest: dict, tokenizer, hat_segments: int) -> dict:
    geo, lsg, hat = settings.geometry, LSG[settings.quick], HAT[settings.quick]
    package = manifest["source"]["packages"][0] if manifest["source"].get("packages") else {}
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description("cpu"),
        "load average at the start": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__} (ours, lsg, hat); {PEER} "
                    f"worker: {args.peer_info.get('versions', 'not run')}; longdoc code {harness.code_version()}",
        "clock": "CPU time of the timing process / the worker (1 thread)" if args.clock == "cpu" else "wall",
        "matmul peak GFLOP/s": ", ".join(f"{str(d)[6:]} {p:.1f}" for d, p in peaks.items()),
        "ours": "longdoc's QuestionAnswerer (longdoc.pipelines.qa) on the saved folder" if settings.ours_via == "pipeline"
                else "longdoc.data.qa_windows + the model + longdoc.data.qa_spans (hat: longdoc.data.hat_qa)",
        "ours-bf16": "ours under bf16 autocast (the QuestionAnswerer's default on CPUs with bf16 units); MFU over "
                     "the bf16 peak",
        "geometry": geo,
        "windows (ours, lsg, the pipeline)": f"max_seq_len {settings.max_length}, doc_stride {settings.doc_stride}, "
                                             f"batch {'all windows of the question' if not settings.batch_windows else settings.batch_windows}, "
                                             f"max_answer_len {settings.max_answer_len}, top_k 1, align_to_words",
        "Longformer": f"attention_window {settings.attention_window}, global attention on <s> and the question",
        "LSG": f"{lsg}, question_global (the question as extra global tokens)",
        "HAT": f"layout {hat['encoder_layout']}, segments of {hat['max_sentence_size']} tokens, at most {hat_segments}, "
               f"the question in every segment",
        "text": f"python-faq set (checksum {manifest['checksum'][:12]}...) from {package.get('package', '?')} "
                f"{package.get('version', '?')}: question {question['id']!r} ({question['question']!r}, page "
                f"{question['page']}); context = its page, then the others, cut to exactly T tokens",
        "tokenizer": f"byte-level BPE trained on the FAQ pages ({len(tokenizer)} tokens), saved as RobertaTokenizer "
                     f"(fast); TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}",
        "weights": "random (seed 0), LayerNorms randomised, every dropout 0; the pipeline loads ours's saved folder "
                   "(the same weights)",
        "timing": f"1 warm-up, then up to {args.rounds} rounds of A B .. B A over the implementations (fewer when "
                  f"a length would take over {args.case_budget_s:.0f} s); median s per call; {PEER} timed inside "
                  f"its worker; a call = question and context in, best answer out",
        "memory": f"peak growth of one call over the loaded model, a fresh process per row (peak read from "
                  f"{memory_methods})",
        "tok/s": "context tokens (T) per second",
        "MFU": "harness FLOP counts over the tokens each model reads (windows or segments, padding left out) / "
               "time / fp32 peak",
        "lengths": list(lengths),
        "other processes while timing": "; ".join(f"T={n}: {what}" for n, what in args.interference.items()),
    }


def write_results(rows: list[Row], stem: str, out_dir: Path, command: str, context: dict) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "png"))
    harness.write_csv([row.values() for row in rows], csv_path)
    title = f"{stem}: long-document QA, ours vs {PEER}'s pipeline (with LSG and HAT)"
    lines = harness.markdown_head(title, command, context)
    lines += ["", "Columns: s/call median seconds per answered question; tok/s context tokens per second; MFU% "
              "counted useful FLOPs / time / the measured fp32 matmul peak; MiB peak memory growth of one call; "
              f"speed x and mem x the row's tokens/s and peak memory over {PEER}'s (speed > 1: faster; memory < 1: "
              "smaller).", "", f"Target (ours / {PEER}): speed >= 2x at memory <= 0.5x.", ""]
    lines += target_summary(rows) + ["", "```", format_table(rows), "```", ""]
    md_path.write_text("\n".join(lines))
    harness.plot_impl_rows(rows, png_path, title, COLOURS, "ours", PEER, TARGETS)
    return [csv_path, md_path, png_path]


def main(argv=None) -> None:
    args = parse_args(argv)
    if (args.threads or torch.get_num_threads()) == 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread everywhere, the worker too
    transformers.logging.set_verbosity_error()  # the tokenizer's "longer than the model" warning on whole pages
    transformers.logging.disable_progress_bar()
    command = harness.setup_run(args, run_memory_probe)
    if command is None:  # a memory-probe child
        return
    lengths = tuple(args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS))
    windows = WINDOWS[args.quick]
    settings = Settings(quick=args.quick, max_length=windows["max_length"], doc_stride=windows["doc_stride"],
                        attention_window=windows["attention_window"], max_answer_len=args.max_answer_len,
                        batch_windows=args.batch_windows, ours_via=args.ours_via)
    dtypes = (torch.float32,) + ((torch.bfloat16,) if "ours-bf16" in args.impls else ())
    peaks = {dtype: harness.matmul_peak_gflops(dtype, "cpu", min_seconds=0.05 if args.quick else 0.2,
                                               clock=clock_of(args)) for dtype in dtypes}
    print("matmul peak GFLOP/s: " + ", ".join(f"{str(d)[6:]} {p:.1f}" for d, p in peaks.items()), flush=True)
    pages, question, manifest = faq_pages()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_qa_") as tmp:
        tmp = Path(tmp)
        tokenizer = train_tokenizer(pages, tmp / "tokenizer", settings.max_length)
        workloads, shapes = {}, {}
        for seq_len in lengths:
            context = context_of_tokens(tokenizer, pages, question["page"], seq_len)
            workloads[seq_len] = tmp / f"workload_{seq_len}.json"
            workloads[seq_len].write_text(json.dumps({"question": question["question"], "context": context}))
        hat_segments = max(read_shape("hat", tokenizer, question["question"],
                                      json.loads(workloads[seq_len].read_text())["context"], settings, 10**6)["pieces"]
                           for seq_len in lengths)
        folders = {impl: tmp / impl for impl in ("ours", "lsg", "hat")}
        for impl, folder in folders.items():
            if impl in {FOLDER_OF.get(i, "ours") for i in args.impls}:
                save_model(impl, settings, tokenizer, folder, hat_segments)
        for seq_len in lengths:
            context = json.loads(workloads[seq_len].read_text())["context"]
            shapes[seq_len] = {impl: read_shape("hat" if impl == "hat" else "ours", tokenizer, question["question"],
                                                context, settings, hat_segments) for impl in args.impls}
            rows += time_length(seq_len, workloads[seq_len], folders, args, settings, peaks, shapes[seq_len])
            gc.collect()
        memory_methods = "not measured (--skip-memory)"
        if not args.skip_memory:
            print("peak memory: one fresh process per row...", flush=True)
            memory_methods = measure_memory(rows, workloads, folders, args, settings, shapes)
    harness.fill_ratios(rows, PEER)
    print()
    print(format_table(rows))
    print("\n".join(target_summary(rows)))
    stem = "qa" + ("_quick" if args.quick else "")
    context = run_context(args, settings, lengths, peaks, memory_methods, question, manifest, tokenizer, hat_segments)
    for path in write_results(rows, stem, args.out, command, context):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
