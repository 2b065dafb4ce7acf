"""Where the parts of a pair encoding are: `[CLS] q [SEP] c [SEP]` (BERT) or `<s> q </s></s> c </s>`
(RoBERTa). The question is every token before the first separator ([CLS]/<s> included), which is
how `transformers`' LongformerForQuestionAnswering places its global attention; unlike it, no
count of separators is assumed, so BERT-style pairs (two separators) work too."""

from __future__ import annotations

import torch


def first_separator(input_ids: torch.Tensor, sep_token_id: int | None, task: str) -> torch.Tensor:
    """(B,) index of the first separator in every row; a row without one is an error."""
    if sep_token_id is None:
        raise ValueError(f"{task} needs config.sep_token_id to find the question (set it to the tokenizer's "
                         f"sep_token_id), or pass the mask yourself")
    is_sep = input_ids == sep_token_id
    missing = (~is_sep.any(dim=1)).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"{task}: rows {missing} have no separator token (id {sep_token_id}); encode the input as a pair "
            f"(question/context or context/choice) with the tokenizer, or pass the mask yourself"
        )
    return is_sep.int().argmax(dim=1)


def question_mask(input_ids: torch.Tensor, sep_token_id: int | None) -> torch.Tensor:
    """(B, T) long: 1 on every token before the first separator (the question and the opening token)."""
    first = first_separator(input_ids, sep_token_id, "question answering")
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (pos[None, :] < first[:, None]).long()
