"""LSG-BART generate() on padded batches: a row's tokens do not depend on its batch-mates, and equal
lsg-converter's for the batch and for the row alone (greedy and beam search; norm, pooling, none, stride,
block_stride; 1 to 3 global tokens passed to the decoder or pooled; mask_first_token; rows that are not
multiples of the block, one short enough for full attention alone)."""

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import torch

import longdoc
from longdoc.cli import main
from longdoc.pipelines import Summarizer
from lsg_generation_cases import BEAM, GREEDY, MODEL, PADDING_DEPENDENT, cases, make_inputs
from tiny_checkpoints import WORDS, bert_tokenizer

ROOT = Path(__file__).resolve().parents[1]
ORACLE_PYTHON = Path(os.environ.get("LONGDOC_LSG_ORACLE", ROOT / ".venv-lsg" / "bin" / "python"))
ORACLE_SCRIPT = ROOT / "tests" / "oracles" / "lsg_generation_oracle.py"
CASES = cases()
BATCH_INDEPENDENT = [c for c in CASES if c["config"]["sparsity_type"] != PADDING_DEPENDENT]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """lsg-converter's checkpoints and generations of every case."""
    if not ORACLE_PYTHON.exists():
        message = f"the lsg-converter oracle is missing at {ORACLE_PYTHON}: run `make oracle`"
        if os.environ.get("LONGDOC_REQUIRE_ORACLE"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("lsg-generation")
    spec = folder / "cases.json"
    spec.write_text(json.dumps(CASES))
    result = subprocess.run([str(ORACLE_PYTHON), str(ORACLE_SCRIPT), str(spec), str(folder)], capture_output=True,
                            text=True)
    if result.returncode:
        raise RuntimeError(f"lsg-converter generation oracle failed:\n{result.stderr[-4000:]}")
    return folder


def generate_each_way(model, ids, mask, lengths, settings) -> tuple[list, list]:
    """Token ids of the whole batch and of every row generated alone, its padding cut off."""
    with torch.no_grad():
        batched = model.generate(input_ids=ids, attention_mask=mask, **settings)
        alone = [model.generate(input_ids=ids[i:i + 1, :n], attention_mask=mask[i:i + 1, :n], **settings)[0]
                 for i, n in enumerate(lengths)]
    return batched.tolist(), [row.tolist() for row in alone]


def differing_rows(batched: list, alone: list, pad: int) -> list[int]:
    """Rows whose batched tokens are not the row's own tokens followed by padding."""
    return [i for i, own in enumerate(alone)
            if batched[i][:len(own)] != own or any(t != pad for t in batched[i][len(own):])]


def random_model(config: dict, seed: int = 0) -> longdoc.LSGBartForConditionalGeneration:
    torch.manual_seed(seed)
    return longdoc.LSGBartForConditionalGeneration(longdoc.LSGBartConfig(**config)).eval()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_generation_equals_lsg_converter_batched_and_alone(reference, case):
    folder = reference / case["name"]
    theirs = torch.load(folder / "oracle.pt")
    model = longdoc.LSGBartForConditionalGeneration.from_pretrained(folder).eval()
    ids, mask = theirs["input_ids"], theirs["attention_mask"]
    for index, settings in enumerate(case["generate"]):
        batched, alone = generate_each_way(model, ids, mask, case["lengths"], settings)
        assert batched == theirs["batched"][index].tolist(), f"{settings}: batched token ids differ"
        assert alone == [row.tolist() for row in theirs["alone"][index]], f"{settings}: a row alone differs"
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=theirs["batched"][0]).logits
    # these weights (std 0.5) give logits of ~10 and amplify fp32 rounding: 1e-4 relative to their size
    torch.testing.assert_close(logits, theirs["logits"], rtol=0, atol=1e-4 * theirs["logits"].abs().max().item())


def test_lsg_converter_is_batch_independent_except_for_bos_pooling(reference):
    """The oracle's own behaviour, which the parity above inherits: every case but bos_pooling gives a row the
    same tokens alone and in its batch; bos_pooling does not (windows of padding only are attended)."""
    dependent = {}
    for case in CASES:
        theirs = torch.load(reference / case["name"] / "oracle.pt")
        for index, _ in enumerate(case["generate"]):
            rows = differing_rows(theirs["batched"][index].tolist(), [r.tolist() for r in theirs["alone"][index]],
                                  case["config"]["pad_token_id"])
            if rows:
                dependent[case["name"]] = rows
    assert set(dependent) == {c["name"] for c in CASES if c not in BATCH_INDEPENDENT}, dependent


@pytest.mark.parametrize("case", BATCH_INDEPENDENT, ids=[c["name"] for c in BATCH_INDEPENDENT])
def test_a_row_generates_the_same_tokens_alone_and_in_a_padded_batch(case):
    model = random_model(case["config"], case["seed"])
    ids, mask = make_inputs(case)
    for settings in (GREEDY, BEAM):
        batched, alone = generate_each_way(model, ids, mask, case["lengths"], settings)
        assert differing_rows(batched, alone, MODEL["pad_token_id"]) == [], settings


@pytest.mark.parametrize("settings", [GREEDY, BEAM], ids=["greedy", "beam"])
def test_generation_with_the_cache_equals_generation_without_it(settings):
    """generate() feeds the decoder one new token per step: the cache must reach it (transformers >= 5 names
    it `cache`), or every step would read only its last token."""
    case = CASES[0]
    model = random_model(case["config"], case["seed"])
    ids, mask = make_inputs(case)
    with torch.no_grad():
        cached = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **settings)
        recomputed = model.generate(input_ids=ids, attention_mask=mask, use_cache=False, **settings)
    assert cached.tolist() == recomputed.tolist()


@pytest.mark.parametrize("passed", [True, False], ids=["globals-passed", "globals-pooled"])
def test_mask_first_token_hides_the_first_token_from_the_decoder_too(passed):
    """As in lsg-converter: the decoder does not read the first token's state, so its id changes nothing; and no
    attention mask means every token, so it must give what an all-ones mask gives."""
    model = random_model(dict(MODEL, block_size=8, sparse_block_size=8, num_global_tokens=2, mask_first_token=True,
                              pass_global_tokens_to_decoder=passed))
    ids = torch.randint(5, MODEL["vocab_size"], (2, 29), generator=torch.Generator().manual_seed(3))
    other_first = ids.clone()
    other_first[:, 0] = (ids[:, 0] + 1 - 5) % (MODEL["vocab_size"] - 5) + 5
    decoder_ids = torch.randint(5, MODEL["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=decoder_ids).logits
        changed = model(input_ids=other_first, attention_mask=torch.ones_like(ids), decoder_input_ids=decoder_ids).logits
        unmasked = model(input_ids=ids, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(changed, logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(unmasked, logits, rtol=0, atol=1e-4)


def left_padding_summarizer(sparsity: str) -> tuple:
    """A random LSG-BART and a tokenizer that pads on the left, as some do by default."""
    tokenizer = bert_tokenizer()
    tokenizer.padding_side = "left"
    ids = dict(vocab_size=len(tokenizer), pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2,
               forced_eos_token_id=3)  # [PAD], [CLS], [SEP]
    model = random_model(dict(MODEL, **ids, block_size=8, sparse_block_size=8, num_global_tokens=2,
                              sparsity_type=sparsity))
    return model, tokenizer


def random_texts(lengths=(70, 12, 41, 25)) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS[10:40]) for _ in range(n)) for n in lengths]


@pytest.mark.parametrize("sparsity", ["norm", PADDING_DEPENDENT])
def test_the_summarizer_gives_a_document_the_same_summary_alone_and_in_a_batch(sparsity):
    """A summary must not depend on the documents batched with it, even with a tokenizer that pads on the left,
    nor for bos_pooling (which the Summarizer runs a document at a time)."""
    model, tokenizer = left_padding_summarizer(sparsity)
    texts = random_texts()
    batched = list(Summarizer(model, tokenizer, batch_size=4).summarize(texts, num_beams=2, max_length=10))
    alone = [next(Summarizer(model, tokenizer, batch_size=1).summarize([text], num_beams=2, max_length=10))
             for text in texts]
    assert batched == alone
    assert len(set(alone)) > 1  # the summaries do depend on the document


def test_longdoc_summarize_gives_a_file_the_same_summary_alone_and_in_a_batch(tmp_path, capsys):
    model, tokenizer = left_padding_summarizer("norm")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    settings = tmp_path / "model" / "tokenizer_config.json"  # padding_side is saved only when set at creation
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "padding_side": "left"}))
    files = []
    for index, text in enumerate(random_texts()):
        files.append(tmp_path / f"doc{index}.txt")
        files[-1].write_text(text)
    options = ["--num-beams", "2", "--max-length", "10"]

    def summaries(paths, batch_size):
        capsys.readouterr()
        assert main(["summarize", str(tmp_path / "model"), *map(str, paths), "--batch-size", str(batch_size),
                     *options]) == 0
        return {line["source"]: line["summary"] for line in map(json.loads, capsys.readouterr().out.splitlines())}

    batched = summaries(files, batch_size=4)
    alone = {}
    for path in files:
        alone.update(summaries([path], batch_size=1))
    assert batched == alone and len(batched) == len(files)
