"""bench_lsg.py's workloads and its lsg-converter worker.

lsg-converter 0.1.9 needs transformers 4.36.2, so it runs in a worker process under .venv-lsg:
`PeerWorker` starts `PYTHON lsg_peer.py`, which reads one JSON request per line on stdin and answers
each with one line `LSG_WORKER_REPLY {json}` on stdout (whatever the libraries print goes to stderr):
  {"op": "load", "family": "bert"|"bart", "checkpoint": DIR, "threads": N, "device": D}
      -> {"versions", "threads", "missing_keys", "unexpected_keys"}
  {"op": "run", "case": C, "seq_len": T, "vocab_size": V, "eos_token_id": E|null, "warmup": W,
   "calls": N, "memory": bool, "digest": bool, "generate_kwargs": {...}}
      -> {"seconds": [N per-call seconds], "median_s", "peak_bytes", "memory_method", "digest"}
      memory: first the peak memory growth of one call (harness.measure_peak_memory; ask it of a
      fresh worker), then W warm-up calls, then N timed calls (harness.timed_call).
  {"op": "quit"}

Inputs, workloads and output digests are built by the functions below on both sides, so every
implementation runs the same calls. This module imports only the standard library, torch and the
harness (torch, psutil), and lsg_converter / transformers 4.36 inside the worker: never longdoc,
never transformers 5.
"""

from __future__ import annotations

import json
import statistics
import sys
import traceback
from pathlib import Path

import torch

import harness
from peer_worker import PeerProcess, WorkerError  # noqa: F401  (WorkerError: bench_lsg catches it)

PEER = "lsg-converter"
WORKER_TAG = "LSG_WORKER_REPLY "

# ---------------------------------------------------------------------------------------------
# Workloads: the same on every side


def model_inputs(seq_len: int, vocab_size: int, device: str, eos_token_id: int | None = None) -> dict:
    """Batch 1, no padding, random ids in [3, vocab) (0..2 are special in every family here), the
    same in both virtualenvs (one seed, one torch version); BART inputs end with </s>."""
    gen = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(3, vocab_size, (1, seq_len), generator=gen)
    if eos_token_id is not None:
        ids[:, -1] = eos_token_id
    return dict(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device))


def make_workload(case: str, model: torch.nn.Module, inputs: dict, generate_kwargs: dict | None = None):
    """A no-argument callable running `case` once and returning its output (for the digest)."""
    if case == "train_step_fp32":
        # steady state: gradient buffers exist before the step (as from step 2 of training) and are
        # zeroed in place, so its memory growth is activations and temporaries only
        for param in model.parameters():
            param.grad = torch.zeros_like(param)

        def train_step():
            model.train()
            model.zero_grad(set_to_none=False)
            loss = model(**inputs).last_hidden_state.sum()
            loss.backward()
            return loss.detach()

        return train_step
    if case == "infer_fp32":
        def infer():
            model.eval()
            with torch.inference_mode():
                return model(**inputs).last_hidden_state

        return infer
    if case == "bart_encode":
        encoder = model.get_encoder()

        def encode():
            model.eval()
            with torch.inference_mode():
                # lsg-converter's encoder ignores the config's return_dict default: ask, and take item 0
                return encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               return_dict=True)[0]

        return encode
    if case == "bart_generate":
        def generate():
            model.eval()
            with torch.inference_mode():
                return model.generate(**inputs, **generate_kwargs)

        return generate
    raise ValueError(f"unknown case {case!r}")


def output_digest(case: str, model: torch.nn.Module, output) -> list:
    """A few numbers that tell whether two implementations computed the same thing: the loss and
    the input embeddings' gradient norm (training), sums and corner values of the hidden states,
    or the generated token ids."""
    if case == "bart_generate":
        return output.tolist()
    if case == "train_step_fp32":
        grad = model.get_input_embeddings().weight.grad
        return [float(output), float(grad.double().norm())]
    x = output.double()
    return [float(x.sum()), float(x.pow(2).sum()), float(x[0, 0, 0]), float(x[0, -1, -1])]


def digests_agree(a: list, b: list, rel: float = 1e-3) -> bool:
    if len(a) != len(b):
        return False
    if a and isinstance(a[0], list):  # token ids
        return a == b
    return all(abs(x - y) <= rel * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------
# Worker side (runs under .venv-lsg)


def _worker_load(request: dict) -> tuple[torch.nn.Module, dict]:
    import importlib.metadata

    import transformers

    if request.get("threads"):
        torch.set_num_threads(request["threads"])
    if request["family"] == "bert":
        from lsg_converter.bert.modeling_lsg_bert import LSGBertModel as model_class
    else:
        from lsg_converter.bart.modeling_lsg_bart import LSGBartForConditionalGeneration as model_class
    model, info = model_class.from_pretrained(request["checkpoint"], output_loading_info=True)
    model = model.to(request.get("device", "cpu"))
    return model, {
        "versions": f"transformers {transformers.__version__}, lsg-converter "
                    f"{importlib.metadata.version('lsg-converter')}",
        "threads": torch.get_num_threads(),
        "missing_keys": list(info.get("missing_keys", [])),
        "unexpected_keys": list(info.get("unexpected_keys", [])),
    }


def _worker_run(request: dict, model: torch.nn.Module, workloads: dict, device: str) -> dict:
    case, seq_len = request["case"], request["seq_len"]
    if (case, seq_len) not in workloads:  # inputs and gradient buffers: built once, outside any timing
        inputs = model_inputs(seq_len, request["vocab_size"], device, request.get("eos_token_id"))
        workloads[case, seq_len] = make_workload(case, model, inputs, request.get("generate_kwargs"))
    workload = workloads[case, seq_len]
    reply = {}
    if request.get("memory"):
        memory = harness.measure_peak_memory(workload, device)
        reply.update(peak_bytes=memory["peak_bytes"], memory_method=memory["method"])
    for _ in range(request.get("warmup", 0)):
        workload()
    seconds, output = [], None
    for _ in range(request.get("calls", 0)):
        elapsed, output = harness.timed_call(workload, device)
        seconds.append(elapsed)
    reply["seconds"] = seconds
    reply["median_s"] = statistics.median(seconds) if seconds else None
    if request.get("digest") and output is not None:
        reply["digest"] = output_digest(case, model, output)
    return reply


def worker_main() -> None:
    """Answers requests until "quit" or the end of stdin (protocol: the module docstring)."""
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not mix with the replies
    model, workloads, device = None, {}, "cpu"
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        try:
            if op == "load":
                device = request.get("device", "cpu")
                model, reply = _worker_load(request)
                workloads.clear()
            elif op == "run":
                if model is None:
                    raise RuntimeError("run before load")
                reply = _worker_run(request, model, workloads, device)
            elif op == "quit":
                reply = {}
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception:  # reported to the main process, which decides
            reply = {"error": traceback.format_exc()}
        replies.write(WORKER_TAG + json.dumps(reply) + "\n")
        replies.flush()
        if op == "quit":
            break


# ---------------------------------------------------------------------------------------------
# Client side (runs in the benchmark's process)


class PeerWorker(PeerProcess):
    """lsg-converter in its own interpreter (`python`, that of .venv-lsg), with `family`'s model
    loaded from `checkpoint`; `info` is the load reply. A context manager: closes on exit."""

    def __init__(self, python: Path, family: str, checkpoint: Path, threads: int, device: str):
        super().__init__(python, __file__,
                         dict(op="load", family=family, checkpoint=str(checkpoint), threads=threads, device=device),
                         PEER, WORKER_TAG, "`make oracle` builds .venv-lsg; or pass --lsg-python / set LONGDOC_LSG_ORACLE")


if __name__ == "__main__":
    worker_main()
