"""The transformers 4.57 question-answering pipeline (tests/oracles/qa_pipeline_oracle.py) run once
per tiny checkpoint and window setting, shared by test_qa_windows and test_qa_spans.

The oracle runs in its own virtualenv (`.venv-qa`, built by `make oracle` / `make test`; override
with LONGDOC_QA_ORACLE=/path/to/python). Without it the parity tests skip, unless
LONGDOC_REQUIRE_ORACLE is set, which makes a missing oracle a failure.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path

import pytest

from qa_tiny_checkpoints import paragraph, tiny_bert_no_answer_qa, tiny_bert_qa, tiny_roberta_qa

ROOT = Path(__file__).resolve().parents[1]
ORACLE_PYTHON = Path(os.environ.get("LONGDOC_QA_ORACLE", ROOT / ".venv-qa" / "bin" / "python"))
ORACLE_SCRIPT = ROOT / "tests" / "oracles" / "qa_pipeline_oracle.py"
CHECKPOINTS = {"bert": tiny_bert_qa, "roberta": tiny_roberta_qa, "bert-no-answer": tiny_bert_no_answer_qa}

QUESTIONS = ["Which kernel module handles the stream?", "what is the checksum of the release",
             "Who compiles the package?", "where"]
# postprocess settings: top_k 1 and 3, max_answer_len small and large, both switches
SETTINGS = [dict(top_k=k, max_answer_len=m, handle_impossible_answer=h, align_to_words=a)
            for k in (1, 3) for m in (2, 30) for h in (False, True) for a in (True, False)]
# (max_length, doc_stride): context lengths are not multiples of the window's step
WINDOWS = {"bert": [(64, 19), (96, 40)], "roberta": [(64, 19), (80, 7)], "bert-no-answer": [(64, 19)]}


def contexts(seed: int = 1) -> list[str]:
    """Contexts of 3 to 25 sentences: each spans several windows but the shortest."""
    rng = random.Random(seed)
    return [paragraph(rng, sentences) for sentences in (9, 14, 25, 3)]


def require_oracle() -> None:
    if ORACLE_PYTHON.exists():
        return
    if os.environ.get("LONGDOC_REQUIRE_ORACLE"):
        pytest.fail(f"the transformers 4.57 QA oracle is missing at {ORACLE_PYTHON}: run `make oracle`")
    pytest.skip(f"transformers 4.57 QA oracle not installed at {ORACLE_PYTHON} (`make oracle` builds it)")


@functools.lru_cache(maxsize=None)
def checkpoint(kind: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"longdoc-qa-{kind}-"))
    return CHECKPOINTS[kind](folder)


@functools.lru_cache(maxsize=None)
def oracle_run(kind: str, max_length: int, doc_stride: int) -> dict:
    """The pipeline's windows, logits and answers for QUESTIONS x contexts() under every SETTINGS."""
    require_oracle()
    spec = {"model": str(checkpoint(kind)), "questions": QUESTIONS, "contexts": contexts(),
            "max_seq_len": max_length, "doc_stride": doc_stride, "settings": SETTINGS}
    result = subprocess.run([str(ORACLE_PYTHON), str(ORACLE_SCRIPT)], input=json.dumps(spec),
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode:
        raise RuntimeError(f"transformers 4.57 QA oracle failed:\n{result.stderr[-4000:]}")
    output = json.loads(result.stdout)
    assert output["transformers"].startswith("4.57."), output["transformers"]
    return output


def cases() -> list[tuple[str, int, int]]:
    return [(kind, length, stride) for kind, windows in WINDOWS.items() for length, stride in windows]
