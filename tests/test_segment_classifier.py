"""The segment classifier model, segmentation, batched encoding and the frozen-vector cache."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers

from longdoc import DocumentClassifier, SegmentClassifier, SegmentClassifierConfig
from longdoc.data.segmentation import Segmentation, check_chunk_size, segment_documents, special_tokens
from longdoc.models import segment_encoding
from longdoc.models.segment_encoding import SegmentVectorCache, encode_documents, length_sorted_batches

from tiny_checkpoints import TINY, WORDS, bert_tokenizer, tiny_bert


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


def build(encoder_dir, **fields) -> SegmentClassifier:
    torch.manual_seed(1)
    fields = dict(num_labels=3, chunk_size=14, max_segments=8) | fields
    return SegmentClassifier.from_encoder(str(encoder_dir), **fields).eval()


def random_segments(counts, length=16, seed=0):
    """Token-id segments for documents with the given segment counts (ragged last segments)."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for count in counts:
        segments = []
        for i in range(count):
            n = length if i < count - 1 else int(torch.randint(3, length + 1, (1,), generator=g))
            segments.append([2] + torch.randint(5, 90, (n - 2,), generator=g).tolist() + [3])
        docs.append(segments)
    return docs


def packed(docs, pad=0):
    counts = [len(d) for d in docs]
    ids, mask = segment_encoding.pad_segments([s for d in docs for s in d], pad)
    segment_mask = torch.arange(max(counts))[None] < torch.tensor(counts)[:, None]
    return ids, mask, segment_mask


# -- segmentation -----------------------------------------------------------------------------


def test_windows_cover_the_document_with_stride_and_drop_a_short_tail():
    assert Segmentation(10, 10, 3).windows(25) == [(0, 10), (10, 20), (20, 25)]
    assert Segmentation(10, 10, 6).windows(25) == [(0, 10), (10, 20)]  # 5-token tail dropped
    assert Segmentation(10, 6, 0).windows(22) == [(0, 10), (6, 16), (12, 22)]  # overlapping
    assert Segmentation(10, 10, 9).windows(4) == [(0, 4)]  # a lone short chunk stays
    assert Segmentation(10, 10, 0, max_segments=2).windows(45) == [(0, 10), (10, 20)]


def test_bad_segmentation_settings_say_what_to_do():
    with pytest.raises(ValueError, match="stride=12 must be between 1 and chunk_size=10"):
        Segmentation(10, 12, 0)
    with pytest.raises(ValueError, match="larger than the encoder allows.*chunk_size <= 62"):
        check_chunk_size(bert_tokenizer(), 63, 64)
    with pytest.raises(ValueError, match="stride=300"):
        SegmentClassifierConfig(encoder={"model_type": "bert", "hidden_size": 32}, chunk_size=254, stride=300)


def test_segments_carry_the_tokenizers_own_special_tokens_and_char_spans():
    tokenizer = bert_tokenizer()
    text = " ".join(WORDS[10:40])  # 30 tokens
    (doc,) = segment_documents([text], tokenizer, Segmentation(12, 12, 4))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert special_tokens(tokenizer) == ([cls], [sep])
    assert [len(s) for s in doc.segments] == [14, 14, 8]
    assert all(s[0] == cls and s[-1] == sep for s in doc.segments)
    assert text[doc.char_spans[1][0]:doc.char_spans[1][1]] == " ".join(WORDS[22:34])
    assert doc.num_tokens == 30


def test_roberta_style_special_tokens_are_read_from_the_tokenizer():
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "a", "b", "Ġ", "Ġa", "Ġb"])}
    tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=[])
    (doc,) = segment_documents(["a b a b a b a"], tokenizer, Segmentation(3, 3, 0))
    assert all(s[0] == 0 and s[-1] == 2 for s in doc.segments)
    assert sum(len(s) - 2 for s in doc.segments) == doc.num_tokens


def test_chinese_text_without_spaces_is_segmented_by_characters(tmp_path):
    chars = list("长文档分类模型把每一段编码然后汇总")
    tokenizer = bert_tokenizer(extra=chars)
    text = "".join(chars) * 3  # 51 characters, no spaces
    (doc,) = segment_documents([text], tokenizer, Segmentation(16, 16, 2))
    assert doc.num_tokens == len(text)
    assert tokenizer.unk_token_id not in {t for s in doc.segments for t in s}
    assert [text[a:b] for a, b in doc.char_spans] == [text[i : i + 16] for i in range(0, 51, 16)]
    # and the whole pipeline classifies it
    encoder = tiny_bert(tmp_path / "zh", extra_tokens=chars)
    model = build(encoder)
    prediction = DocumentClassifier.from_model(model, tokenizer).predict([text], explain=True)[0]
    assert len(prediction.labels) == 1 and set(prediction.explanation) == set(prediction.labels)


# -- model ------------------------------------------------------------------------------------


def test_packed_padded_and_precomputed_inputs_give_the_same_logits(encoder_dir):
    model = build(encoder_dir)
    docs = random_segments([3, 1, 5])
    ids, mask, segment_mask = packed(docs)
    with torch.no_grad():
        flat = model(ids, mask, segment_mask=segment_mask).logits
        padded_ids = torch.zeros(3, 5, ids.shape[1], dtype=torch.long)
        padded_mask = torch.zeros_like(padded_ids)
        padded_ids[segment_mask], padded_mask[segment_mask] = ids, mask
        padded = model(padded_ids, padded_mask).logits
        vectors = encode_documents(model, docs, 0, bf16=False, progress=None)
        embeddings = torch.zeros(3, 5, 32)
        embeddings[segment_mask] = torch.cat(vectors)
        cached = model(segment_embeddings=embeddings, segment_mask=segment_mask).logits
    torch.testing.assert_close(padded, flat, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached, flat, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["segment", "chunk-pool"])
def test_a_document_does_not_depend_on_its_batch_or_padding(encoder_dir, method):
    model = build(encoder_dir, method=method, chunk_pooling="max")
    docs = random_segments([2, 6, 1], seed=3)
    with torch.no_grad():
        together = model(*packed(docs)[:2], segment_mask=packed(docs)[2]).logits
        for i, doc in enumerate(docs):
            ids, mask, segment_mask = packed([doc])
            alone = model(ids, mask, segment_mask=segment_mask).logits
            torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=0)


def test_label_attention_is_a_distribution_over_real_segments(encoder_dir):
    model = build(encoder_dir)
    ids, mask, segment_mask = packed(random_segments([2, 4]))
    with torch.no_grad():
        out = model(ids, mask, segment_mask=segment_mask, output_attentions=True)
    weights = out.label_attentions  # (B, L, N)
    assert weights.shape == (2, 3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert weights[0, :, 2:].abs().max() == 0  # padded segments get no weight
    assert model(ids, mask, segment_mask=segment_mask).label_attentions is None  # only when asked


def test_chunk_pool_mean_and_max_pool_the_segment_logits(encoder_dir):
    docs = random_segments([3, 2], seed=5)
    ids, mask, segment_mask = packed(docs)
    for how, pool in (("mean", lambda x: x.mean(0)), ("max", lambda x: x.amax(0))):
        model = build(encoder_dir, method="chunk-pool", chunk_pooling=how)
        with torch.no_grad():
            out = model(ids, mask, segment_mask=segment_mask, output_attentions=True)
            per_segment = model.classifier(model.encode_segments(ids, mask))  # (S, L)
        torch.testing.assert_close(out.logits[0], pool(per_segment[:3]), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.logits[1], pool(per_segment[3:]), atol=1e-5, rtol=0)


def test_truncate_reads_only_the_first_segment(encoder_dir):
    config = SegmentClassifierConfig(encoder={"model_type": "bert", "hidden_size": 32}, method="truncate")
    assert config.max_segments == 1
    model = build(encoder_dir, method="truncate")
    tokenizer = bert_tokenizer()
    long_text = " ".join(WORDS[10:70])
    short_text = " ".join(WORDS[10:24])  # exactly the first 14-token chunk
    a, b = DocumentClassifier.from_model(model, tokenizer).predict([long_text, short_text])
    assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_losses_single_and_multi_label(encoder_dir):
    ids, mask, segment_mask = packed(random_segments([2, 3]))
    single = build(encoder_dir, problem_type="single_label_classification")
    out = single(ids, mask, segment_mask=segment_mask, labels=torch.tensor([0, 2]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])))
    multi = build(encoder_dir, problem_type="multi_label_classification")
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = multi(ids, mask, segment_mask=segment_mask, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets))


def test_gradient_checkpointing_gives_the_same_gradients(encoder_dir):
    ids, mask, segment_mask = packed(random_segments([2, 3]))
    grads = []
    for checkpointing in (False, True):
        model = build(encoder_dir, aggregator_dropout=0.0, classifier_dropout=0.0).train()
        model.encoder.config.hidden_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if checkpointing:
            model.activation_checkpointing_enable()
        model(ids, mask, segment_mask=segment_mask, labels=torch.tensor([1, 2])).loss.backward()
        grads.append(model.encoder.embeddings.word_embeddings.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_frozen_encoder_gets_no_gradient(encoder_dir):
    model = build(encoder_dir, freeze_encoder=True).train()
    ids, mask, segment_mask = packed(random_segments([2]))
    model(ids, mask, segment_mask=segment_mask, labels=torch.tensor([1])).loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.label_attention.queries.grad.abs().sum() > 0


def test_save_and_load_round_trip(encoder_dir, tmp_path):
    model = build(encoder_dir, method="segment", pooling="cls", aggregator_layers=2)
    model.save_pretrained(tmp_path / "m")
    loaded = SegmentClassifier.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.pooling == "cls" and loaded.config.chunk_size == 14
    ids, mask, segment_mask = packed(random_segments([3, 2]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask, segment_mask=segment_mask).logits,
                                   model(ids, mask, segment_mask=segment_mask).logits)


def test_too_many_segments_for_the_positions_is_an_error(encoder_dir):
    model = build(encoder_dir, max_segments=2)
    with pytest.raises(ValueError, match="positions for 2"):
        model(segment_embeddings=torch.zeros(1, 3, 32))


def test_bad_config_values_raise(encoder_dir):
    with pytest.raises(ValueError, match="method='tree' is not one of"):
        SegmentClassifierConfig(method="tree")
    with pytest.raises(ValueError, match="threshold=1.5"):
        SegmentClassifierConfig(threshold=1.5)


# -- batched encoding, bf16, cache ------------------------------------------------------------


def test_length_sorted_batches_respect_the_token_budget():
    lengths = [5, 40, 12, 40, 3, 20]
    batches = length_sorted_batches(lengths, batch_tokens=80)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(max(lengths[i] for i in b) * len(b) <= 80 for b in batches)
    assert batches[0] == [1, 3]  # longest first


def test_length_sorted_batches_keep_a_short_item_out_of_a_long_batch():
    lengths = [4096, 1100, 4096, 3500, 900]
    assert length_sorted_batches(lengths, batch_tokens=16384) == [[0, 2, 3, 1], [4]]  # the budget alone
    # min_fill 0.75: 1100 and 900 are under 3/4 of 4096, so they go together, padded to 1100 only
    assert length_sorted_batches(lengths, batch_tokens=16384, min_fill=0.75) == [[0, 2, 3], [1, 4]]


def test_bf16_autocast_predictions_match_fp32(encoder_dir):
    model = build(encoder_dir)
    tokenizer = bert_tokenizer()
    texts = [" ".join(WORDS[10 + i : 60 + i]) for i in range(6)]
    fp32 = DocumentClassifier.from_model(model, tokenizer).predict(texts, bf16=False)
    bf16 = DocumentClassifier.from_model(model, tokenizer).predict(texts, bf16=True)
    for a, b in zip(fp32, bf16):
        assert a.labels == b.labels
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 0.02


def test_cache_encodes_each_document_once_and_is_keyed_by_the_weights(encoder_dir, tmp_path, monkeypatch):
    model = build(encoder_dir)
    docs = random_segments([2, 3], seed=9)
    calls = []
    real = segment_encoding.encode_documents

    def counting(model, documents, *args, **kwargs):
        calls.append(len(documents))
        return real(model, documents, *args, **kwargs)

    monkeypatch.setattr(segment_encoding, "encode_documents", counting)
    first = SegmentVectorCache(model, tmp_path, bf16=False).vectors(docs, 0, progress=None)
    again = SegmentVectorCache(model, tmp_path, bf16=False).vectors(docs + random_segments([1], seed=4), 0, progress=None)
    assert calls == [2, 1]  # the second call only encodes the new document
    torch.testing.assert_close(again[0], first[0])
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight.mul_(2)
    assert SegmentVectorCache(model, tmp_path, bf16=False).folder != SegmentVectorCache(build(encoder_dir), tmp_path, bf16=False).folder


def test_documents_longer_than_max_segments_are_read_in_part_with_a_warning(encoder_dir):
    model = build(encoder_dir, max_segments=2)
    tokenizer = bert_tokenizer()
    with pytest.warns(UserWarning, match=r"1 of 2 documents are longer than max_segments=2 .* \(1 segments left out\)"):
        DocumentClassifier.from_model(model, tokenizer).predict([" ".join(WORDS[10:50]), " ".join(WORDS[10:20])])


def _tiny_mpnet(folder):
    vocab = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"] + WORDS
    tokenizer = transformers.MPNetTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    fields = {k: v for k, v in TINY.items() if k != "type_vocab_size"}
    transformers.MPNetModel(transformers.MPNetConfig(vocab_size=len(vocab), max_position_embeddings=66, **fields)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_an_mpnet_encoder_gets_its_own_special_tokens_and_length_limit(tmp_path):
    from longdoc.data.labels import LabelSpace
    from longdoc.families import get_family

    LABELS = LabelSpace(("a", "b"), False)

    source = _tiny_mpnet(tmp_path / "mpnet")
    model, tokenizer = get_family("segment").build("classification", str(source), {"head_config": LABELS.config_fields()})
    assert type(model.encoder).__name__ == "MPNetModel"
    assert model.config.chunk_size == 62  # 66 positions - 2 padding rows - <s> and </s>
    (doc,) = segment_documents([" ".join(WORDS[10:90])], tokenizer, Segmentation(62, 62, 7))
    assert all(s[0] == tokenizer.bos_token_id and s[-1] == tokenizer.eos_token_id for s in doc.segments)
    with pytest.raises(ValueError, match="chunk_size <= 62"):
        get_family("segment").build("classification", str(source), {"head_config": LABELS.config_fields(),
                                                                     "chunk_size": 63})
    (prediction,) = DocumentClassifier.from_model(model, tokenizer).predict([" ".join(WORDS[10:90])], explain=True)
    assert len(prediction.explanation[prediction.labels[0]].segments) == 2
