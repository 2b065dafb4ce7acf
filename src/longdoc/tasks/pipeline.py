"""`longdoc.pipeline(task, model=...)`: the pipeline of a task by its name, as transformers' `pipeline()`
(whose question-answering pipeline transformers 5 removed) was called.

    qa = longdoc.pipeline("question-answering", model="my-qa-model", max_answer_len=100)
    qa(question="...", context="...")
"""

from __future__ import annotations

import os

from .base import get_task


def pipeline(task: str, model=None, tokenizer=None, device=None, **options):
    """The pipeline of `task` (a name or alias of `longdoc.tasks`; an unknown one is a ValueError that
    lists them) for `model`: a folder that `longdoc train` wrote, or a model object with its `tokenizer`.
    `device`: "cpu", "cuda", "cuda:1", or transformers' integer (-1 the CPU, n the n-th GPU); default CUDA
    when there is one. `options` go to the pipeline (QuestionAnswerer: max_length / max_seq_len,
    doc_stride, max_answer_len, top_k, handle_impossible_answer, align_to_words)."""
    chosen = get_task(task)
    if model is None:
        raise ValueError(f"give the model: longdoc.pipeline({task!r}, model='path/to/model') (a folder that "
                         f"`longdoc train --task {chosen.name}` wrote)")
    if isinstance(device, int):
        device = "cpu" if device < 0 else f"cuda:{device}"
    cls = chosen.pipeline_class()
    if isinstance(model, (str, os.PathLike)):
        if tokenizer is not None:
            raise ValueError("the tokenizer is read from the model folder: leave tokenizer out")
        return cls.from_pretrained(model, device=device, **options)
    if tokenizer is None:
        raise ValueError(f"a {type(model).__name__} object needs its tokenizer: pipeline(..., model=model, "
                         f"tokenizer=tokenizer), or give the model's folder")
    return cls(model.to(device) if device else model, tokenizer, **options)
