"""bench_qa.py's peer: transformers 4.57's question-answering pipeline in a worker process.

transformers 5 has no question-answering pipeline, so the peer runs under .venv-qa (transformers
4.57.6): `QAPeer` starts `PYTHON qa_peer.py`, which reads one JSON request per line on stdin and
answers each with one line `QA_WORKER_REPLY {json}` on stdout (whatever the libraries print goes to
stderr):
  {"op": "load", "checkpoint": DIR, "threads": N, "clock": "wall"|"cpu"}
      -> {"versions", "threads", "missing_keys", "unexpected_keys", "model_class"}
      DIR holds a LongformerForQuestionAnswering checkpoint (the one bench_qa.py's side runs,
      saved by transformers 5) and its fast RoBERTa tokenizer; the pipeline is
      pipeline("question-answering", model, tokenizer, device="cpu").
  {"op": "run", "workload": FILE, "pipeline_kwargs": {...}, "calls": N, "memory": bool}
      -> {"seconds": [N per-call seconds], "answer": the last call's answer, "peak_bytes", "memory_method"}
      FILE: JSON {"question", "context"}; pipeline_kwargs: max_seq_len, doc_stride, max_answer_len,
      top_k, batch_size... as the pipeline takes them. memory: first the peak memory growth of one
      call (harness.measure_peak_memory; ask it of a fresh worker), then the timed calls.
  {"op": "quit"}

Imports the standard library, torch, the harness (torch, psutil) and transformers 4.57: never
longdoc, never transformers 5.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import harness
from peer_worker import PeerProcess, WorkerError  # noqa: F401  (WorkerError: bench_qa catches it)

PEER = "transformers-4.57"
WORKER_TAG = "QA_WORKER_REPLY "
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


# ---------------------------------------------------------------------------------------------
# Worker side (runs under .venv-qa)


def _worker_load(request: dict):
    import torch
    import transformers

    if request.get("threads"):
        torch.set_num_threads(request["threads"])
    model, info = transformers.AutoModelForQuestionAnswering.from_pretrained(request["checkpoint"],
                                                                            output_loading_info=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(request["checkpoint"])
    if not tokenizer.is_fast:
        raise RuntimeError(f"the tokenizer in {request['checkpoint']} loaded as a slow one: the pipeline's windows "
                           f"need a fast tokenizer (tokenizer.json)")
    qa = transformers.pipeline("question-answering", model=model.eval(), tokenizer=tokenizer, device="cpu")
    return qa, {
        "versions": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "model_class": type(model).__name__,
        "missing_keys": list(info.get("missing_keys", [])),
        "unexpected_keys": list(info.get("unexpected_keys", [])),
    }


def _worker_run(request: dict, qa, clock) -> dict:
    import torch

    workload = json.loads(Path(request["workload"]).read_text())
    kwargs = request.get("pipeline_kwargs", {})

    def answer():
        with torch.inference_mode():
            return qa(question=workload["question"], context=workload["context"], **kwargs)

    reply = {}
    if request.get("memory"):
        memory = harness.measure_peak_memory(answer)
        reply.update(peak_bytes=memory["peak_bytes"], memory_method=memory["method"])
    seconds, output = [], None
    for _ in range(request.get("calls", 0)):
        elapsed, output = harness.timed_call(answer, "cpu", clock)
        seconds.append(elapsed)
    reply["seconds"] = seconds
    if output is not None:
        first = output[0] if isinstance(output, list) else output
        reply["answer"] = {key: first[key] for key in ("answer", "start", "end", "score")}
    return reply


def worker_main() -> None:
    """Answers requests until "quit" or the end of stdin (protocol: the module docstring)."""
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not mix with the replies
    qa, clock = None, time.perf_counter
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        try:
            if op == "load":
                clock = CLOCKS[request.get("clock", "wall")]
                qa, reply = _worker_load(request)
            elif op == "run":
                if qa is None:
                    raise RuntimeError("run before load")
                reply = _worker_run(request, qa, clock)
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


class QAPeer(PeerProcess):
    """The 4.57 pipeline in its own interpreter (`python`, that of .venv-qa) with the checkpoint in
    `checkpoint` loaded; `info` is the load reply. A context manager: closes on exit."""

    def __init__(self, python: Path, checkpoint: Path, threads: int, clock: str):
        super().__init__(python, __file__, dict(op="load", checkpoint=str(checkpoint), threads=threads, clock=clock),
                         "transformers 4.57", WORKER_TAG,
                         "`make oracle` builds .venv-qa; or pass --qa-python / set LONGDOC_QA_ORACLE")


if __name__ == "__main__":
    worker_main()
