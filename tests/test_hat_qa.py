"""Question answering with HAT: inputs that carry the question in every segment (longdoc.data.hat_qa),
offsets back to the context, HATForQuestionAnswering on padded batches, and a few training steps."""

import re

import pytest
import torch
import transformers

import longdoc
import longdoc.assets
from longdoc.data.hat_qa import NO_ANSWER, batch_hat_qa, best_answer_span, hat_qa_input, pair_template
from tiny_checkpoints import WORDS, bert_tokenizer

SIZE = 12


def hat_config(layout="S|SD|S|SD", **overrides):
    fields = dict(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=48, max_sentence_size=SIZE,
                  max_sentences=8, encoder_layout=layout, pad_token_id=0, num_labels=2, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, initializer_range=0.2)
    return longdoc.HATConfig(**{**fields, **overrides})


def words(rng: torch.Generator, count: int) -> str:
    return " ".join(WORDS[int(i)] for i in torch.randint(10, 90, (count,), generator=rng))


@pytest.fixture(scope="module")
def tokenizer():
    return bert_tokenizer()


def test_every_segment_is_the_tokenizers_pair_encoding_of_question_and_chunk(tokenizer):
    question, context = "w1 w2 w3", words(torch.Generator().manual_seed(0), 40)
    item = hat_qa_input(question, context, tokenizer, SIZE, max_segments=8)
    room = SIZE - 3 - 3  # [CLS] q(3) [SEP] chunk [SEP]
    assert item.num_segments == -(-40 // room) and item.question_tokens == 3 and item.cut_tokens == 0
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    for n in range(item.num_segments):
        chunk = tokenizer.decode(context_ids[n * room:(n + 1) * room])
        expected = tokenizer(question, chunk, return_token_type_ids=True)  # the tokenizer's own pair encoding
        segment = slice(n * SIZE, (n + 1) * SIZE)
        real = len(expected["input_ids"])
        assert item.input_ids[segment][:real] == expected["input_ids"]
        assert item.token_type_ids[segment][:real] == expected["token_type_ids"]
        assert item.attention_mask[segment] == [1] * real + [0] * (SIZE - real)
        assert item.input_ids[segment][real:] == [tokenizer.pad_token_id] * (SIZE - real)
    assert [item.input_ids[p] for p in item.context_positions] == context_ids


def test_roberta_style_pairs_keep_their_template():
    template = pair_template(transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm()))
    assert (template.prefix, template.middle, template.suffix) == ([101], [102], [102])
    assert (template.question_type, template.context_type) == (0, 1)
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "a", "b", "Ġa", "Ġb"])}
    roberta = transformers.RobertaTokenizer(vocab=vocab, merges=[])
    template = pair_template(roberta)
    assert (template.prefix, template.middle, template.suffix) == ([0], [2, 2], [2])
    item = hat_qa_input("a", "a b a", roberta, segment_size=10, max_segments=2)
    assert item.input_ids[:10] == roberta("a", "a b a")["input_ids"] + [1] * 2


def test_offsets_slice_the_context_exactly():
    tokenizer = transformers.AutoTokenizer.from_pretrained(longdoc.assets.packaged_minilm())
    context = ("The Linux kernel's  documentation (Documentation/) is written in reStructuredText; "
               "it was started in 1991 by Linus Torvalds, in Helsinki.\n\nSee also: the man-pages project, "
               "whose maintainer is Michael Kerrisk. ") * 3
    item = hat_qa_input("Who started the kernel?", context, tokenizer, segment_size=32, max_segments=64)
    spans = [item.offset_mapping[p] for p in item.context_positions]
    assert item.num_segments > 5
    covered = [False] * len(context)
    for (start, end), previous in zip(spans, [(0, 0)] + spans[:-1]):
        assert start >= previous[1] and end > start  # in order, never overlapping
        for i in range(start, end):
            covered[i] = True
    assert all(covered[i] == (not context[i].isspace()) for i in range(len(context)))  # every character, once
    pieces = tokenizer.convert_ids_to_tokens([item.input_ids[p] for p in item.context_positions])
    for (start, end), piece in zip(spans, pieces):  # the uncased wordpiece is the lower-cased slice
        assert context[start:end].lower() == piece.removeprefix("##")
    not_context = set(range(len(item.input_ids))) - set(item.context_positions)
    assert all(item.offset_mapping[p] is None and not item.answer_mask[p] for p in not_context)


def test_answer_positions_and_the_span_search_round_trip(tokenizer):
    context = words(torch.Generator().manual_seed(1), 50)
    item = hat_qa_input("w1 w2", context, tokenizer, SIZE, max_segments=8)
    room = SIZE - 2 - 3
    starts = [m.start() for m in re.finditer(r"\S+", context)]
    ends = [m.end() for m in re.finditer(r"\S+", context)]
    for first, last in [(0, 0), (3, 5), (room - 1, room + 1), (47, 49)]:  # (room - 1, room + 1): over two segments
        start, end = item.answer_positions(starts[first], ends[last])
        assert (start, end) == (item.context_positions[first], item.context_positions[last])
        start_logits, end_logits = torch.zeros(2, len(item.input_ids))
        start_logits[start], end_logits[end] = 5.0, 4.0
        span = best_answer_span(start_logits, end_logits, item)
        assert (span.start, span.end) == (starts[first], ends[last]) and span.score == pytest.approx(9.0)
    # a span longer than max_answer_tokens is never chosen; an end before the start neither
    start_logits, end_logits = torch.zeros(2, len(item.input_ids))
    start_logits[item.context_positions[10]], end_logits[item.context_positions[20]] = 5.0, 5.0
    end_logits[item.context_positions[5]] = 9.0
    span = best_answer_span(start_logits, end_logits, item, max_answer_tokens=5)
    first, last = starts.index(span.start), ends.index(span.end)  # one token per word here
    assert 0 <= last - first < 5 and span.score == pytest.approx(9.0)
    assert best_answer_span(start_logits, end_logits, item, max_answer_tokens=11)[:2] == (starts[10], ends[20])
    # logits of a padded batch row (more segments than the input) are fine
    wider = torch.cat([start_logits, torch.full((3 * SIZE,), 50.0)]), torch.cat([end_logits, torch.full((3 * SIZE,), 50.0)])
    assert best_answer_span(*wider, item, max_answer_tokens=11)[:2] == (starts[10], ends[20])


def test_bad_inputs_say_how_to_fix_them(tokenizer):
    with pytest.raises(ValueError, match=r"question has 9 tokens.*no room for context.*at most 8 tokens"):
        hat_qa_input(" ".join(WORDS[:9]), "w1 w2", tokenizer, SIZE, max_segments=4)
    context = words(torch.Generator().manual_seed(2), 60)
    with pytest.raises(ValueError, match=r"needs 9 segments.*at most 4.*truncate=True"):
        hat_qa_input("w1 w2", context, tokenizer, SIZE, max_segments=4)
    item = hat_qa_input("w1 w2", context, tokenizer, SIZE, max_segments=4, truncate=True)
    assert item.num_segments == 4 and item.cut_tokens == 60 - 4 * 7
    last_word = context.rsplit(" ", 1)[1]
    assert item.answer_positions(len(context) - len(last_word), len(context)) == NO_ANSWER  # cut away
    with pytest.raises(ValueError, match="empty"):
        item.answer_positions(5, 5)
    empty = hat_qa_input("w1", "", tokenizer, SIZE, max_segments=4)
    assert empty.num_segments == 1 and empty.context_positions == [] and not any(empty.answer_mask)
    assert best_answer_span(torch.zeros(SIZE), torch.zeros(SIZE), empty) is None


def batch_of(tokenizer, questions, contexts):
    items = [hat_qa_input(q, c, tokenizer, SIZE, max_segments=8) for q, c in zip(questions, contexts)]
    return items, batch_hat_qa(items, tokenizer.pad_token_id)


def test_hat_qa_model_runs_on_padded_batches(tokenizer):
    """Three inputs of 2, 6 and 4 segments in one batch: each row's logits are those it has alone."""
    rng = torch.Generator().manual_seed(3)
    items, batch = batch_of(tokenizer, ["w1 w2", "w3", "w4 w5 w6"], [words(rng, n) for n in (10, 45, 19)])
    assert [item.num_segments for item in items] == [2, 6, 4] and batch["input_ids"].shape == (3, 6 * SIZE)
    torch.manual_seed(4)
    model = longdoc.HATForQuestionAnswering(hat_config(pool_empty_segments=False)).eval()
    with torch.no_grad():
        together = model(**batch)
        for row, item in enumerate(items):
            alone = model(**batch_hat_qa([item], tokenizer.pad_token_id))
            length = len(item.input_ids)
            real = torch.tensor(item.attention_mask, dtype=torch.bool)
            for name in ("start_logits", "end_logits"):
                torch.testing.assert_close(getattr(together, name)[row, :length][real], getattr(alone, name)[0][real],
                                           atol=1e-5, rtol=0)


def test_a_question_change_reaches_every_segment(tokenizer):
    context = words(torch.Generator().manual_seed(5), 45)
    torch.manual_seed(6)
    model = longdoc.HATForQuestionAnswering(hat_config("S|S")).eval()  # no cross-segment layer at all
    logits = []
    for question in ("w1 w2 w3", "w1 w9 w3"):
        items, batch = batch_of(tokenizer, [question], [context])
        with torch.no_grad():
            logits.append(model(**batch).start_logits[0])
    positions = torch.tensor(items[0].context_positions)
    change = (logits[0] - logits[1]).abs()[positions]
    for n in range(items[0].num_segments):  # every segment's context tokens see the new question word
        in_segment = (positions // SIZE) == n
        assert change[in_segment].min() > 1e-4, n


def test_a_tiny_hat_learns_to_answer_a_toy_question(tokenizer):
    """The answer is the word after w5 (once in the context, somewhere in segments 2-5): a few Adam steps
    lower the loss, and the span search then returns the gold characters."""
    rng = torch.Generator().manual_seed(7)
    questions, contexts, answers = [], [], []
    for index in range(4):
        parts = words(rng, 40).split()
        at = 14 + 6 * index
        parts[at] = "w5"
        contexts.append(" ".join(parts))
        start = len(" ".join(parts[:at + 1])) + 1
        answers.append((start, start + len(parts[at + 1])))
        questions.append("w1 w2")
    items, batch = batch_of(tokenizer, questions, contexts)
    targets = torch.tensor([item.answer_positions(*answer) for item, answer in zip(items, answers)])
    assert all(target != NO_ANSWER for target in map(tuple, targets.tolist()))
    torch.manual_seed(8)
    model = longdoc.HATForQuestionAnswering(hat_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(**batch, start_positions=targets[:, 0], end_positions=targets[:, 1]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    for row, (item, answer) in enumerate(zip(items, answers)):
        assert best_answer_span(out.start_logits[row], out.end_logits[row], item)[:2] == answer
