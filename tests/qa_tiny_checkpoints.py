"""Tiny random-weight QA checkpoints with real fast tokenizers, made locally (no model hub):

- BERT: BertForQuestionAnswering with the packaged MiniLM's WordPiece tokenizer ([CLS] q [SEP] c [SEP]);
- RoBERTa: RobertaForQuestionAnswering with a byte-level BPE tokenizer trained here on generated
  text (<s> q </s></s> c </s>), small enough that many words split into several pieces.

Texts are generated from a fixed word list with capitals, digits and punctuation, so word pieces,
offsets and whole-word alignment all matter.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer

import longdoc.assets

STEMS = ("archive kernel module driver buffer parser window stride token answer question context "
         "document section header footer table column index offset pointer memory thread process "
         "signal socket packet stream channel handler callback registry manifest checksum version "
         "release package install compile configure optimise evaluate benchmark").split()
SUFFIXES = ("", "", "", "s", "ing", "ed", "er", "ation", "ability")
SMALL = "the a of in to and is was for with on by at from".split()
TINY_QA = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
               initializer_range=0.5)  # large weights: logits spread, spans differ clearly in score


def sentence(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(5, 14)):
        if rng.random() < 0.3:
            words.append(rng.choice(SMALL))
        else:
            word = rng.choice(STEMS) + rng.choice(SUFFIXES)
            if rng.random() < 0.1:
                word = word.capitalize()
            if rng.random() < 0.05:
                word += f"-{rng.randint(1, 999)}"
            words.append(word)
    text = " ".join(words)
    if rng.random() < 0.3:
        text = text.replace(" ", ", ", 1)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "!", "?", ";"])


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def corpus(seed: int = 0, lines: int = 400) -> list[str]:
    rng = random.Random(seed)
    return [paragraph(rng, 3) for _ in range(lines)]


def roberta_tokenizer(folder: Path, vocab_size: int = 320) -> transformers.PreTrainedTokenizerBase:
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=vocab_size, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    vocab, merges = bpe.save_model(str(folder))
    tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    Path(vocab).unlink()
    Path(merges).unlink()
    tokenizer.model_max_length = 512
    return tokenizer


def tiny_bert_qa(folder: Path, seed: int = 0, max_positions: int = 128) -> Path:
    tokenizer = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=max_positions,
                                     **TINY_QA)
    torch.manual_seed(seed)
    transformers.BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_roberta_qa(folder: Path, seed: int = 0, max_positions: int = 130) -> Path:
    tokenizer = roberta_tokenizer(folder)
    config = transformers.RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions,
                                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, type_vocab_size=1, **TINY_QA)
    torch.manual_seed(seed)
    transformers.RobertaForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_bert_no_answer_qa(folder: Path, seed: int = 0, boost: float = 4.5) -> Path:
    """A BERT QA model without encoder layers (embeddings, then the QA head) whose CLS token often
    outscores the context: its token type (0, shared only with the masked question) is moved along
    the head's start+end direction, so "no answer" ranks among the best answers of some pairs."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128,
                                     **{**TINY_QA, "num_hidden_layers": 0})
    torch.manual_seed(seed)
    model = transformers.BertForQuestionAnswering(config)
    with torch.no_grad():
        direction = model.qa_outputs.weight.sum(dim=0)
        direction -= direction.mean()  # LayerNorm removes the mean: keep what survives it
        model.bert.embeddings.token_type_embeddings.weight[0] += boost * direction / direction.norm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
