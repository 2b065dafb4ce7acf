"""LSG-BART generation cases: a padded batch, generated whole and row by row, by lsg-converter
(tests/oracles/lsg_generation_oracle.py) and by longdoc (tests/test_lsg_generation.py)."""

from __future__ import annotations

import itertools

import torch

from lsg_oracle_cases import BART

# init_std 0.5, not the parity cases' 0.1: with weights that small the decoder repeats one token whatever it
# has generated or read, so generation that loses its cache or misreads the encoder's mask still agrees
MODEL = {**BART, "init_std": 0.5}
GREEDY = dict(max_length=12, num_beams=1, do_sample=False, min_length=0, no_repeat_ngram_size=0)
BEAM = dict(max_length=12, num_beams=3, do_sample=False, min_length=0, no_repeat_ngram_size=0, length_penalty=1.0,
            early_stopping=True)

# (block_size, sparse_block_size, sparsity_factor, lengths, padded length): rows of lengths that are not multiples
# of the block; the 13-token row is short enough for full attention when it is alone
GEOMETRIES = [
    (8, 8, 2, [45, 30], 45),
    (8, 4, 4, [64, 50, 13], 64),
    (16, 8, 2, [70, 41], 70),
    (8, 16, 2, [22, 57], 57),
]
# "lsh" draws random hashes per call, so a row alone and in a batch differ by design: not a case
SPARSITY = ["norm", "pooling", "none", "stride", "block_stride"]
# lsg-converter's bos_pooling lets windows of padding only be attended (fp32), which longdoc reproduces: the
# outputs of a row then depend on the padding its batch-mates bring (test_lsg_generation checks both facts)
PADDING_DEPENDENT = "bos_pooling"


def case(name: str, sparsity: str, geometry: tuple, seed: int, **settings) -> dict:
    block, sparse_block, factor, lengths, total = geometry
    config = dict(MODEL, block_size=block, sparse_block_size=sparse_block, sparsity_factor=factor,
                  sparsity_type=sparsity, **settings)
    return dict(name=name, config=config, lengths=lengths, total=total, seed=seed, generate=[GREEDY, BEAM])


def cases() -> list[dict]:
    """norm, pooling and none under every combination of 1 or 3 global tokens, passing them to the decoder
    or not, and mask_first_token; the other sparsity types under one combination each."""
    out = []
    combinations = itertools.product(SPARSITY[:3], (1, 3), (True, False), (False, True))
    for index, (sparsity, globals_, passed, mask_first) in enumerate(combinations):
        out.append(case(f"{sparsity}-g{globals_}-{'pass' if passed else 'pool'}{'-mask1' if mask_first else ''}",
                        sparsity, GEOMETRIES[index % len(GEOMETRIES)], index, num_global_tokens=globals_,
                        pass_global_tokens_to_decoder=passed, mask_first_token=mask_first))
    for index, sparsity in enumerate(SPARSITY[3:]):
        out.append(case(f"{sparsity}-g2", sparsity, GEOMETRIES[index + 1], 100 + index, num_global_tokens=2))
    out.append(case(f"{PADDING_DEPENDENT}-g2", PADDING_DEPENDENT, GEOMETRIES[1], 200, num_global_tokens=2))
    return out


def make_inputs(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A case's batch: random ids ending in </s>, right-padded to `total`, and its attention mask."""
    config = case["config"]
    gen = torch.Generator().manual_seed(case["seed"] + 1000)
    lengths = torch.tensor(case["lengths"])
    ids = torch.randint(5, config["vocab_size"], (len(lengths), case["total"]), generator=gen)
    mask = (torch.arange(case["total"])[None, :] < lengths[:, None]).long()
    ids[torch.arange(len(lengths)), lengths - 1] = config["eos_token_id"]
    return ids.masked_fill(mask == 0, config["pad_token_id"]), mask
