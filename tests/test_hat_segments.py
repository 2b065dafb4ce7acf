"""HAT segments: sentence splitting, the three strategies, max_segments, batching (real tokenizers, offline)."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from longdoc.assets import packaged_minilm
from longdoc.data.hat_segments import (
    HATSegments,
    batch_segments,
    hat_special_ids,
    segment_document,
    segment_documents,
    split_sentences,
)

SENTENCES = [
    "The kernel schedules tasks on every core.",
    "Each task has a priority!",
    "Why does the scheduler preempt a running task?",
    "Dr. Smith explained it with Fig. 3 of the U.S. report, e.g. the latency table.",
    "Short one.",
    "Interrupts arrive at any time and the handler runs with preemption disabled until it returns.",
    "Done.",
]
TEXT = " ".join(SENTENCES)
CHINESE = ["今天天气很好。", "我们去公园散步！", "你想一起来吗？", "好的；", "走吧．"]


@pytest.fixture(scope="module")
def bert():
    return transformers.AutoTokenizer.from_pretrained(packaged_minilm())


@pytest.fixture(scope="module")
def roberta():
    """A byte-level BPE with <s> </s> <pad> and no cls token, like RoBERTa's."""
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES * 3, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def plain(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def segments_of(result: HATSegments) -> list[list[int]]:
    size = result.segment_size
    return [result.input_ids[i * size : (i + 1) * size] for i in range(result.num_segments)]


def real_tokens(result: HATSegments) -> list[list[int]]:
    """Each segment's tokens after CLS, where the mask is 1."""
    size, out = result.segment_size, []
    for i in range(result.num_segments):
        ids, mask = result.input_ids[i * size : (i + 1) * size], result.attention_mask[i * size : (i + 1) * size]
        out.append([t for t, m in zip(ids[1:], mask[1:]) if m])
    return out


def check_layout(result: HATSegments, size: int, cls: int, pad: int):
    assert result.segment_size == size
    assert len(result.input_ids) == len(result.attention_mask) == result.num_segments * size
    assert len(result.char_spans) == result.num_segments
    masks = [result.attention_mask[i : i + size] for i in range(0, len(result.attention_mask), size)]
    for ids, mask in zip(segments_of(result), masks):
        assert ids[0] == cls and mask[0] == 1
        length = sum(mask)
        assert mask == [1] * length + [0] * (size - length)  # real tokens first, then padding
        assert ids[length:] == [pad] * (size - length)
    assert result.tokens == sum(map(len, real_tokens(result)))


# --- sentences -----------------------------------------------------------------------------------


def test_split_sentences_keeps_abbreviations_and_recovers_sentences():
    spans = split_sentences(TEXT)
    assert [TEXT[a:b] for a, b in spans] == SENTENCES


def test_split_sentences_needs_a_sentence_start_and_breaks_paragraphs():
    text = 'It ends here. lower case goes on. "Quoted start." (Bracket.) 42 is next!\n\nnew paragraph\nsame one'
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "It ends here. lower case goes on.", '"Quoted start."', "(Bracket.)", "42 is next!",
        "new paragraph\nsame one",
    ]
    assert split_sentences("") == [] and split_sentences("  \n\n ") == []


def test_split_sentences_chinese_without_spaces():
    text = "".join(CHINESE)
    assert [text[a:b] for a, b in split_sentences(text)] == CHINESE


# --- greedy --------------------------------------------------------------------------------------


def expected_greedy(sentence_tokens: list[list[int]], capacity: int) -> list[list[list[int]]]:
    """Sentences (all fitting) packed by hand: next sentence joins while the sum fits."""
    groups = [[]]
    for tokens in sentence_tokens:
        if groups[-1] and sum(map(len, groups[-1])) + len(tokens) > capacity:
            groups.append([])
        groups[-1].append(tokens)
    return groups


@pytest.mark.parametrize("size", [28, 32, 48])
def test_greedy_packs_whole_sentences(bert, size):
    cls, pad = hat_special_ids(bert)
    sentence_tokens = [plain(bert, s) for s in SENTENCES]
    assert max(map(len, sentence_tokens)) <= size - 1  # every sentence fits: none may be split
    result = segment_document(TEXT, bert, segment_size=size, max_segments=16)
    check_layout(result, size, cls, pad)
    groups = expected_greedy(sentence_tokens, size - 1)
    assert real_tokens(result) == [sum(group, []) for group in groups]
    assert 1 < result.num_segments < len(SENTENCES)  # packed, and more than one segment
    # each segment's span starts at a sentence start and ends at a sentence end
    starts, ends = {TEXT.index(s) for s in SENTENCES}, {TEXT.index(s) + len(s) for s in SENTENCES}
    assert all(a in starts and b in ends for a, b in result.char_spans)
    assert result.cut_segments == result.cut_tokens == 0


def test_greedy_fills_a_segment_exactly(bert):
    sentence_tokens = [plain(bert, s) for s in SENTENCES[:3]]
    size = len(sentence_tokens[0]) + len(sentence_tokens[1]) + 1  # the first two fill one segment to the last slot
    result = segment_document(" ".join(SENTENCES[:3]), bert, segment_size=size, max_segments=4)
    assert real_tokens(result) == [sentence_tokens[0] + sentence_tokens[1], sentence_tokens[2]]
    assert 0 not in result.attention_mask[:size]


def test_greedy_spreads_a_long_sentence_without_losing_tokens(bert):
    cls, pad = hat_special_ids(bert)
    long = "The scheduler " + " ".join(f"handles task number {i} quickly" for i in range(30)) + " today."
    text = f"First short sentence. {long} Last short sentence."
    size = 16
    result = segment_document(text, bert, segment_size=size, max_segments=64)
    check_layout(result, size, cls, pad)
    pieces = real_tokens(result)
    assert sum(pieces, []) == plain(bert, text)  # nothing lost, nothing reordered
    first = plain(bert, "First short sentence.")
    assert pieces[0] == first  # the long sentence starts its own segment
    long_tokens = plain(bert, long)
    assert len(long_tokens) > 3 * (size - 1)
    assert all(len(p) == size - 1 for p in pieces[1 : 1 + len(long_tokens) // (size - 1)])  # full segments


def test_roberta_like_uses_bos_as_cls_and_whole_text_tokens(roberta):
    assert roberta.cls_token_id is None
    cls, pad = hat_special_ids(roberta)
    assert cls == roberta.bos_token_id and pad == roberta.pad_token_id and cls != pad
    result = segment_document(TEXT, roberta, segment_size=32, max_segments=32)
    check_layout(result, 32, cls, pad)
    assert sum(real_tokens(result), []) == plain(roberta, TEXT)
    # byte-level "Ġword" tokens start in the space before a sentence: they must go with that sentence
    starts = {TEXT.index(s) for s in SENTENCES}
    assert all(a in starts or a + 1 in starts for a, _ in result.char_spans)


def test_greedy_without_offsets_tokenizes_each_sentence(bert):
    class NoOffsets:  # a slow tokenizer: no offset mapping
        is_fast = False

        def __init__(self, inner):
            self.inner = inner
            self.cls_token_id, self.bos_token_id, self.pad_token_id = inner.cls_token_id, None, inner.pad_token_id

        def __call__(self, texts, return_offsets_mapping=False, **kwargs):
            assert not return_offsets_mapping
            return self.inner(texts, **kwargs)

    result = segment_document(TEXT, NoOffsets(bert), segment_size=32, max_segments=16)
    assert real_tokens(result) == real_tokens(segment_document(TEXT, bert, segment_size=32, max_segments=16))
    assert result.char_spans == segment_document(TEXT, bert, segment_size=32, max_segments=16).char_spans


def test_chinese_sentences_become_segments(bert):
    text = "".join(CHINESE)
    cls, pad = hat_special_ids(bert)
    sentence_tokens = [plain(bert, s) for s in CHINESE]
    size = max(map(len, sentence_tokens)) + 1  # the longest sentence fills a segment alone
    result = segment_document(text, bert, segment_size=size, max_segments=8)
    check_layout(result, size, cls, pad)
    assert real_tokens(result) == [sum(g, []) for g in expected_greedy(sentence_tokens, size - 1)]
    assert result.num_segments >= 3
    assert [text[a:b] for a, b in result.char_spans][0] == CHINESE[0]


# --- uniform -------------------------------------------------------------------------------------


def test_uniform_cuts_consecutive_chunks(bert):
    cls, pad = hat_special_ids(bert)
    ids = plain(bert, TEXT)
    size = 10
    result = segment_document(TEXT, bert, segment_size=size, max_segments=64, strategy="uniform")
    check_layout(result, size, cls, pad)
    assert result.num_segments == -(-len(ids) // (size - 1))
    assert real_tokens(result) == [ids[i : i + size - 1] for i in range(0, len(ids), size - 1)]
    assert result.char_spans[0][0] == 0 and result.char_spans[-1][1] == len(TEXT)


# --- pre-segmented -------------------------------------------------------------------------------


def test_units_one_segment_each_and_truncation_counted(bert):
    cls, pad = hat_special_ids(bert)
    units = ["A short unit.", SENTENCES[5] + " " + SENTENCES[3], "", "Third unit here."]
    size = 16
    unit_tokens = [plain(bert, u) for u in units]
    assert len(unit_tokens[1]) > size - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # truncated units are counted, not warned about
        result = segment_document(units, bert, segment_size=size, max_segments=8)
    check_layout(result, size, cls, pad)
    assert result.num_segments == len(units)
    assert real_tokens(result) == [t[: size - 1] for t in unit_tokens]
    assert result.cut_tokens == len(unit_tokens[1]) - (size - 1)
    assert result.cut_segments == 0
    assert result.char_spans == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="list of units"):
        segment_document(units, bert, segment_size=size, max_segments=8, strategy="uniform")


# --- max_segments ----------------------------------------------------------------------------------


def test_too_many_segments_raise_or_truncate_with_counts(bert):
    size = 10
    ids = plain(bert, TEXT)
    needed = -(-len(ids) // (size - 1))
    with pytest.raises(ValueError, match=rf"needs {needed} segments of {size} tokens but the model reads at most 3 "
                                         r"\(max_sentences\).*--max-sentences.*truncate=True"):
        segment_document(TEXT, bert, segment_size=size, max_segments=3, strategy="uniform")
    cut_tokens = len(ids) - 3 * (size - 1)
    share = f"{100 * cut_tokens / len(ids):.0f}%"
    counts = rf"cut {needed - 3} segments and {cut_tokens} tokens \({share} of the document\)"
    with pytest.warns(UserWarning, match=counts):
        result = segment_document(TEXT, bert, segment_size=size, max_segments=3, strategy="uniform", truncate=True)
    assert result.num_segments == 3 and result.cut_segments == needed - 3 and result.cut_tokens == cut_tokens
    assert sum(real_tokens(result), []) == ids[: 3 * (size - 1)]


def test_segment_documents_one_summary_warning_and_document_index(bert):
    texts = ["Short.", TEXT, [SENTENCES[0], SENTENCES[1], SENTENCES[2]], TEXT]
    with pytest.raises(ValueError, match=r"^document 1: document needs"):
        segment_documents(texts, bert, segment_size=16, max_segments=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = segment_documents(texts, bert, segment_size=16, max_segments=3, truncate=True)
    assert len(caught) == 1 and "2 of 4 documents" in str(caught[0].message)
    assert [r.num_segments for r in results] == [1, 3, 3, 3]
    with pytest.warns(UserWarning):
        assert results[1] == segment_document(TEXT, bert, segment_size=16, max_segments=3, truncate=True)


# --- batching and empty documents ----------------------------------------------------------------


def test_batch_pads_with_empty_segments(bert):
    cls, pad = hat_special_ids(bert)
    size = 16
    docs = [segment_document("One sentence.", bert, size, 8), segment_document(TEXT, bert, size, 8)]
    assert docs[0].num_segments == 1 and docs[1].num_segments > 2
    batch = batch_segments(docs, pad_token_id=pad)
    n = docs[1].num_segments
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, n * size)
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["input_ids"][0, :size].tolist() == docs[0].input_ids
    assert (batch["input_ids"][0, size:] == pad).all() and (batch["attention_mask"][0, size:] == 0).all()
    assert batch["input_ids"][1].tolist() == docs[1].input_ids
    assert batch_segments(docs, pad, num_segments=n + 2)["input_ids"].shape == (2, (n + 2) * size)
    with pytest.raises(ValueError, match=rf"document 1 has {n} segments but num_segments=2"):
        batch_segments(docs, pad, num_segments=2)


def test_empty_document_is_one_cls_segment(bert, roberta):
    for tokenizer in (bert, roberta):
        cls, pad = hat_special_ids(tokenizer)
        for text in ("", "  \n\n  "):
            result = segment_document(text, tokenizer, segment_size=8, max_segments=4)
            assert result.input_ids == [cls] + [pad] * 7
            assert result.attention_mask == [1] + [0] * 7
            assert result.num_segments == 1 and result.tokens == 0 and result.char_spans == [(0, 0)]


def test_bad_sizes_are_refused(bert):
    with pytest.raises(ValueError, match="segment_size=1"):
        segment_document(TEXT, bert, segment_size=1, max_segments=4)
    with pytest.raises(ValueError, match="max_segments"):
        segment_document(TEXT, bert, segment_size=8, max_segments=0)
