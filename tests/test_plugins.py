"""The plug-in points: the task registry (names, aliases, commands), the families' one build method
per head kind (spans from Longformer, LSG and HAT; LSG as a classification family), the pipelines
found by a model folder's head, and a command line built from the registries without torch."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import random
import subprocess
import sys

import pytest
import torch
import transformers

import longdoc
from longdoc.cli import build_parser, main
from longdoc.convert.seq2seq import warm_start_summarizer
from longdoc.errors import DataError
from longdoc.families import check_family, families_with_head, family_of_config, get_family, head_of_config
from longdoc.pipelines import DocumentClassifier, Summarizer, load_pipeline
from longdoc.tasks import ALIASES, TASKS, Task, get_task, register_task

from tiny_checkpoints import WORDS, tiny_bert, write_documents

CLS, SEP, PAD = 2, 3, 0  # the tiny BERT vocabulary's special tokens


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert") / "bert", max_positions=64)


# -- the command line ------------------------------------------------------------------------------


def test_help_and_the_registries_load_without_torch():
    script = (
        "import sys\n"
        "from longdoc.cli import build_parser\n"
        "from longdoc.families import check_family\n"
        "parser = build_parser()\n"
        "parser.format_help()\n"
        "for command in ('convert', 'train', 'evaluate', 'predict', 'summarize'):\n"
        "    try:\n"
        "        parser.parse_args([command, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "try:\n"
        "    check_family('segment', 'spans')\n"
        "except ValueError as error:\n"
        "    print(error)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "[]"  # neither torch nor transformers (nor numpy) for the help of every command
    assert "--family segment cannot build a spans model" in result.stdout and "usage: longdoc train" in result.stdout
    status = subprocess.run([sys.executable, "-m", "longdoc.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and all(c in status.stdout for c in ("convert", "train", "evaluate", "summarize"))


def test_train_takes_every_registered_task_and_alias():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = next(a for a in train._actions if a.dest == "task").choices
    assert set(choices) == set(ALIASES) >= {"classification", "sentences", "sequential-sentence-classification",
                                            "sentence-classification", "summarization"}


class _EchoTask(Task):
    """A task with a command of its own, registered for one test."""

    name, aliases, head, default_family = "echo", ("repeat",), "tokens", "longformer"
    commands = {"echo": ("print the words back", "Print the words of each FILE.")}

    def add_arguments(self, command, parser):
        if command == "echo":
            parser.add_argument("words", nargs="+")

    def run(self, command, args, out):
        out.print(" ".join(args.words))
        out.note("echoed")
        return 0


def test_a_registered_task_brings_its_command_and_name(capsys):
    register_task(_EchoTask())
    try:
        assert get_task("repeat").name == "echo"
        assert main(["echo", "a", "b"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "a b\n" and captured.err == "echoed\n"
        with pytest.raises(ValueError, match="task name 'repeat' is taken"):
            register_task(type("Other", (_EchoTask,), {"name": "other"})())
    finally:
        TASKS.pop("echo")
        for alias in ("echo", "repeat"):
            ALIASES.pop(alias)
    with pytest.raises(ValueError, match=r"unknown task 'echo'; the tasks are classification; sentences \(or "
                                         r"sequential-sentence-classification, sentence-classification\); "
                                         r"summarization"):
        get_task("echo")


def test_a_family_that_cannot_build_a_head_names_those_that_can(bert, tmp_path):
    assert families_with_head("spans") == ["longformer", "hat", "lsg"]
    with pytest.raises(ValueError, match="--family segment cannot build a spans model .*use --family longformer or "
                                         "hat or lsg"):
        get_family("segment").build("spans", str(bert), {"work_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="--task summarization is not trained by --family hat: use --family lsg"):
        check_family("hat", "seq2seq", task="summarization")
    with pytest.raises(ValueError, match="unknown family 'bigbird'; choose one of segment, chunk-pool"):
        get_family("bigbird")


# -- spans: the QA head of every long family ---------------------------------------------------------


SPAN_FAMILIES = {
    "longformer": ({"max_length": 128}, "LongformerForQuestionAnswering", "LongformerModel"),
    "lsg": ({"max_length": 128, "block_size": 16, "sparse_block_size": 16, "num_global_tokens": 2},
            "LSGBertForQuestionAnswering", "LSGBertModel"),
    "hat": ({"max_sentences": 4, "max_sentence_size": 16, "layout": "S|SD"}, "HATForQuestionAnswering", "HATModel"),
}


def _pair_batch(family: str, seed: int) -> dict:
    """Two rows, the second right-padded, of lengths that are no multiple of a block or window:
    [CLS] question [SEP] context [SEP] (HAT: every segment opens with [CLS])."""
    rng = random.Random(seed)
    length = 64 if family == "hat" else 53
    rows, mask = [], []
    for real in (length, length - 19):
        ids = [CLS] + [rng.randrange(5, 95) for _ in range(4)] + [SEP]
        ids += [rng.randrange(5, 95) for _ in range(real - len(ids) - 1)] + [SEP]
        if family == "hat":
            ids = [CLS if i % 16 == 0 else token for i, token in enumerate(ids)]
        rows.append(ids + [PAD] * (length - real))
        mask.append([1] * real + [0] * (length - real))
    return {"input_ids": torch.tensor(rows), "attention_mask": torch.tensor(mask)}


@pytest.mark.parametrize("family", list(SPAN_FAMILIES))
def test_every_long_family_builds_a_spans_model_from_a_short_encoder(family, bert, tmp_path):
    settings, head_class, base_class = SPAN_FAMILIES[family]
    model, tokenizer = get_family(family).build("spans", str(bert), {**settings, "work_dir": str(tmp_path)})
    assert type(model).__name__ == head_class and tokenizer.cls_token_id == CLS
    model.eval()
    inputs = _pair_batch(family, seed=len(family))
    # the encoder is the conversion of the source, loaded whole (not left at its random initialisation)
    converted = getattr(longdoc, base_class).from_pretrained(tmp_path / f"{family}-encoder").state_dict()
    encoder = model.base_model.state_dict()
    assert set(encoder) <= set(converted)  # the QA model leaves out the pooler it never reads
    assert all(torch.equal(encoder[name], converted[name]) for name in encoder)
    with torch.no_grad():
        logits = model(**inputs)
    assert logits.start_logits.shape == logits.end_logits.shape == inputs["input_ids"].shape
    assert torch.isfinite(logits.start_logits).all()

    # saved and loaded back by the family, as a spans model only
    model.save_pretrained(tmp_path / "qa")
    fields = json.loads((tmp_path / "qa" / "config.json").read_text())
    assert head_of_config(fields) == "spans" and family_of_config(fields) == family
    again = get_family(family).load(str(tmp_path / "qa"), ("spans",)).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).start_logits, logits.start_logits, rtol=0, atol=1e-6)
    with pytest.raises(DataError, match="without a classification head"):
        get_family(family).load(str(tmp_path / "qa"), ("classification",))


@pytest.mark.parametrize("family", list(SPAN_FAMILIES))
def test_a_converted_checkpoint_is_used_as_it_is(family, bert, tmp_path):
    settings, head_class, _ = SPAN_FAMILIES[family]
    first, _ = get_family(family).build("spans", str(bert), {**settings, "work_dir": str(tmp_path / "one")})
    converted = tmp_path / "one" / f"{family}-encoder"
    (tmp_path / "two").mkdir()
    again, _ = get_family(family).build("spans", str(converted), {"work_dir": str(tmp_path / "two")})
    assert type(again).__name__ == head_class and not any((tmp_path / "two").iterdir())  # nothing converted
    ours, theirs = first.base_model.state_dict(), again.base_model.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_a_longformer_spans_model_reads_short_inputs_as_its_source_bert(bert, tmp_path):
    """A window covering the input (128 tokens here) makes Longformer attention full attention: the
    converted encoder must then compute what the BERT it came from computes."""
    model, _ = get_family("longformer").build("spans", str(bert), {"max_length": 128, "work_dir": str(tmp_path)})
    source = transformers.BertModel.from_pretrained(bert).eval()
    inputs = _pair_batch("longformer", seed=3)
    with torch.no_grad():
        ours = model.eval().base_model(**inputs).last_hidden_state
        theirs = source(**inputs, token_type_ids=torch.zeros_like(inputs["input_ids"])).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(ours[real], theirs[real], rtol=0, atol=1e-4)


# -- LSG as a classification family --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lsg_classifier(bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lsg")
    data = {split: write_documents(folder / f"{split}.jsonl", n, seed) for split, n, seed in
            (("train", 24, 0), ("dev", 8, 1), ("test", 6, 2))}
    out = folder / "model"
    code = main(["train", "--family", "lsg", "--model", str(bert), "--train", str(data["train"]), "--validation",
                 str(data["dev"]), "--output", str(out), "--max-length", "160", "--block-size", "16",
                 "--sparse-block-size", "16", "--epochs", "1", "--batch-size", "8"])
    assert code == 0
    return out, data


def test_lsg_trains_evaluates_and_predicts_through_the_command_line(lsg_classifier, capsys):
    out, data = lsg_classifier
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LSGBertForSequenceClassification"] and config["block_size"] == 16
    assert main(["evaluate", str(out), str(data["test"])]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["documents"] == 6 and set(metrics["labels"]) == {"alpha", "beta"}
    assert main(["predict", str(out), str(data["test"])]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["document"] for line in lines] == [f"doc{i}" for i in range(6)]


def test_lsg_predictions_do_not_depend_on_the_batch(lsg_classifier):
    """Documents of 40 to 120 words (blocks of 16 tokens, padding inside a batch) score as when alone."""
    out, _ = lsg_classifier
    classifier = load_pipeline(out, device="cpu")
    assert type(classifier) is DocumentClassifier and classifier.family.name == "lsg"
    rng = random.Random(5)
    texts = [" ".join(rng.choice(WORDS[10:20]) for _ in range(n)) for n in (120, 40, 77)]
    together = classifier.predict(texts, bf16=False)
    for text, prediction in zip(texts, together):
        (alone,) = classifier.predict([text], bf16=False)
        assert alone.labels == prediction.labels
        assert max(abs(alone.scores[k] - prediction.scores[k]) for k in alone.scores) < 1e-5


def test_lsg_settings_apply_to_the_lsg_family_only(bert, tmp_path, capsys):
    data = write_documents(tmp_path / "d.jsonl", 4, 0)
    code = main(["train", "--family", "longformer", "--model", str(bert), "--train", str(data), "--validation",
                 str(data), "--output", str(tmp_path / "m"), "--block-size", "16"])
    assert code == 1 and "--block-size apply to --family lsg only" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


# -- summarization through the same entry point and registry -----------------------------------------


@pytest.fixture(scope="module")
def summarizer_source(bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("s2s") / "model"
    warm_start_summarizer(bert, out, max_length=96, decoder_layers=1, block_size=8, sparse_block_size=8,
                          sparsity_factor=2, num_global_tokens=2)
    return out


def _pairs(path, count, seed):
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            words = [rng.choice(WORDS[10:30]) for _ in range(rng.randrange(20, 50))]
            handle.write(json.dumps({"id": f"d{index}", "text": " ".join(words), "summary": " ".join(words[:3])}) + "\n")
    return path


def test_summarization_trains_through_train_and_its_model_gets_its_pipeline(summarizer_source, tmp_path, capsys):
    pytest.importorskip("rouge_score")
    train, dev = _pairs(tmp_path / "train.jsonl", 8, 0), _pairs(tmp_path / "dev.jsonl", 3, 1)
    out = tmp_path / "out"
    code = main(["train", "--task", "summarization", "--model", str(summarizer_source), "--train", str(train),
                 "--validation", str(dev), "--output", str(out), "--epochs", "1", "--max-target-length", "6",
                 "--num-beams", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "saved the best model (epoch 1) to" in captured.out and "dev: ROUGE-1" in captured.out
    assert "epoch 1: train loss" in captured.err and "-> saved to" in captured.err
    report = json.loads((out / "training_report.json").read_text())
    assert report["task"] == "summarization" and report["family"] == "lsg" and "rougeL" in report["dev_metrics"]
    assert type(load_pipeline(out)) is Summarizer
    assert main(["predict", str(out), str(dev)]) == 1
    assert "is a summarizer: summarize with `longdoc summarize" in capsys.readouterr().err


def test_summarization_is_refused_on_a_family_without_an_encoder_decoder(summarizer_source, tmp_path, capsys):
    data = _pairs(tmp_path / "d.jsonl", 2, 0)
    code = main(["train", "--task", "summarization", "--family", "segment", "--model", str(summarizer_source),
                 "--train", str(data), "--validation", str(data), "--output", str(tmp_path / "m")])
    assert code == 1 and "--task summarization is not trained by --family segment: use --family lsg" in \
        capsys.readouterr().err


def test_each_task_takes_only_its_own_flags_from_train():
    """The train command is shared: summarization's --gradient-checkpointing (off by default) must not turn
    activation checkpointing off for a classifier, whose library default is on."""
    args = build_parser().parse_args(["train", "--model", "m", "--train", "t", "--validation", "v", "--output", "o",
                                      "--freeze-encoder", "--block-size", "16"])
    classification = get_task("classification").training_options(args)
    assert "gradient_checkpointing" not in classification and classification["freeze_encoder"] is True
    assert classification["block_size"] == 16 and "num_beams" not in classification
    summarization = get_task("summarization").training_options(args)
    assert summarization["gradient_checkpointing"] is False and "freeze_encoder" not in summarization


def test_the_package_offers_its_names_and_subpackages_on_first_use():
    script = ("import sys, longdoc\n"
              "before = 'torch' in sys.modules\n"
              "print(before, longdoc.models.HATConfig.model_type, longdoc.DocumentClassifier.__name__,\n"
              "      longdoc.LSGBertModel.__name__, 'train_classifier' in longdoc.__all__)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "hierarchical-transformer", "DocumentClassifier", "LSGBertModel", "True"]
    with pytest.raises(AttributeError, match="module 'longdoc' has no attribute 'nothing'"):
        longdoc.nothing
