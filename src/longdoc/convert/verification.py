"""verify(): a converted checkpoint must compute what its source computed, on inputs the source can take.

Both checkpoints are loaded from disk (so saving and loading are checked too) in fp32 and run
on the same batch of 2 rows of random real tokens, the second right-padded. The batch is short
enough that the long model's attention covers every token from every token, where it must equal
full attention: any difference is a conversion bug (a misplaced position row, a missed weight).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import AutoConfig

from ..errors import VerificationError
from .registry import get_target
from .sources import source_architecture

TOLERANCE = 1e-4  # fp32 whole-model bound (DESIGN.md principle 1)


@dataclass
class VerificationReport:
    max_abs_diff: float  # last hidden states, real tokens only
    logits_max_abs_diff: float | None  # masked-LM logits, when the head was carried
    lengths: tuple[int, ...]  # real tokens in each row of the batch
    tolerance: float
    seconds: float

    @property
    def passed(self) -> bool:
        diffs = [self.max_abs_diff] + ([self.logits_max_abs_diff] if self.logits_max_abs_diff is not None else [])
        return all(d <= self.tolerance for d in diffs)

    def __str__(self) -> str:
        text = f"max |diff| of last hidden states {self.max_abs_diff:.2e}"
        if self.logits_max_abs_diff is not None:
            text += f", of MLM logits {self.logits_max_abs_diff:.2e}"
        rows = " and ".join(str(n) for n in self.lengths)
        verdict = "<=" if self.passed else ">"
        batch = f"batch of {len(self.lengths)}, {rows} tokens; {self.seconds:.1f} s"
        return f"{text} {verdict} {self.tolerance:g} ({batch})"


def random_batch(vocab_size: int, pad_token_id: int, length: int, seed: int = 0):
    """(input_ids, attention_mask), both (2, length): random non-pad ids; row 1 right-padded by a third."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size - 1, (2, length), generator=generator)
    ids = ids + (ids >= pad_token_id).long()  # skip the pad id: it would change a Longformer's positions
    attention_mask = torch.ones(2, length, dtype=torch.long)
    short = length - max(1, length // 3)
    ids[1, short:] = pad_token_id
    attention_mask[1, short:] = 0
    return ids, attention_mask


def verify(
    source: str, converted: str, to: str = "longformer", tolerance: float = TOLERANCE, seed: int = 0
) -> VerificationReport:
    """Compare the converted checkpoint with its source; raise VerificationError beyond `tolerance`."""
    start = time.perf_counter()
    target = get_target(to)
    source_config = AutoConfig.from_pretrained(source)
    arch = source_architecture(source_config)
    source_model = arch.load(source, dtype=torch.float32)
    masked_lm = arch.has_masked_lm_head(source_model.config)
    long_model = target.model_class(masked_lm, arch).from_pretrained(converted, dtype=torch.float32)
    long_model = target.prepare_for_verification(long_model)
    source_model.eval()
    long_model.eval()

    length = min(target.exact_length(long_model.config), arch.max_tokens(source_config))
    if length < 2:
        raise ValueError(f"cannot verify on inputs of {length} token(s); use a larger window")
    input_ids, attention_mask = random_batch(source_config.vocab_size, source_config.pad_token_id, length, seed)
    real = attention_mask.bool()  # padded rows differ by design (a Longformer zeroes them)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if not arch.seq2seq:
        inputs["token_type_ids"] = torch.zeros_like(input_ids)

    with torch.no_grad():
        encode = (lambda m: m.get_encoder()(**inputs)) if arch.seq2seq else (lambda m: m.base_model(**inputs))
        expected = encode(source_model).last_hidden_state  # (2, T, C)
        actual = encode(long_model).last_hidden_state
        hidden_diff = (expected - actual).abs()[real].max().item()
        logits_diff = None
        if masked_lm or arch.seq2seq:  # seq2seq: the decoder reads the shifted inputs, every position compared
            logits = (source_model(**inputs).logits - long_model(**inputs).logits).abs()
            logits_diff = (logits.max() if arch.seq2seq else logits[real].max()).item()

    report = VerificationReport(
        max_abs_diff=hidden_diff,
        logits_max_abs_diff=logits_diff,
        lengths=tuple(int(n) for n in attention_mask.sum(1)),
        tolerance=tolerance,
        seconds=time.perf_counter() - start,
    )
    if not report.passed:
        raise VerificationError(
            f"the converted model at {converted} does not reproduce {source}: {report}. "
            f"The checkpoint is not faithful; please report this with the source's config.json"
        )
    return report
