"""Runs inside the QA oracle virtualenv (`.venv-qa`, transformers 4.57): never imports longdoc.

    python qa_pipeline_oracle.py SPEC.json      (or the spec as JSON on stdin)

prints one JSON object: what transformers' question-answering pipeline (removed in transformers 5)
answers for each question/context pair under each postprocess setting, and the windows its
preprocess built, with the start/end logits its model gave for each, so that windowing and
decoding can be compared separately.

SPEC: {"model": folder with a *ForQuestionAnswering checkpoint and its fast tokenizer,
       "questions": [...], "contexts": [...], "max_seq_len": int, "doc_stride": int,
       "settings": [{"top_k", "max_answer_len", "handle_impossible_answer", "align_to_words"}, ...]}

OUTPUT: {"windows": [[{"input_ids", "attention_mask", "token_type_ids", "p_mask", "offsets",
                       "start_logits", "end_logits"}, ...] per example],
         "answers": [[[{"answer", "score", "start", "end"}, ...] per example] per setting]}
"""

import json
import sys

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline


def as_list(result) -> list:
    """The pipeline returns a dict when one answer is left, a list otherwise."""
    return [result] if isinstance(result, dict) else list(result)


def windows_of(qa, question: str, context: str, window_settings: dict) -> list[dict]:
    """The pipeline's own preprocess and forward, window by window."""
    windows = []
    for features in qa.preprocess({"question": question, "context": context}, **window_settings):
        output = qa._forward(features)
        encoding = features["encoding"]
        windows.append({
            "input_ids": features["input_ids"][0].tolist(),
            "attention_mask": features["attention_mask"][0].tolist(),
            "token_type_ids": features["token_type_ids"][0].tolist() if "token_type_ids" in features else None,
            "p_mask": [int(v) for v in features["p_mask"][0].tolist()],
            "offsets": [list(o) for o in encoding.offsets],
            "start_logits": output["start"][0].tolist(),
            "end_logits": output["end"][0].tolist(),
        })
    return windows


def main() -> None:
    spec = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(spec["model"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    assert tokenizer.is_fast, "the oracle compares fast-tokenizer windows"
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    window_settings = {"max_seq_len": spec["max_seq_len"], "doc_stride": spec["doc_stride"]}
    questions, contexts = spec["questions"], spec["contexts"]
    with torch.no_grad():
        windows = [windows_of(qa, q, c, window_settings) for q, c in zip(questions, contexts)]
        answers = []
        for settings in spec["settings"]:
            results = qa(question=questions, context=contexts, **window_settings, **settings)
            results = [results] if len(questions) == 1 else results
            answers.append([as_list(r) for r in results])
    json.dump({"transformers": __import__("transformers").__version__, "windows": windows, "answers": answers},
              sys.stdout)


if __name__ == "__main__":
    main()
