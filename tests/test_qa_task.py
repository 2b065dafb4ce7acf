"""The question-answering task end to end through the command line, for each long family: `longdoc train
--task question-answering` on a tiny converted BERT and contexts longer than the window, `longdoc
evaluate` (one JSON object whose scores are the SQuAD metrics of what `longdoc answer` prints, and the
dev scores training saved the model by), `longdoc answer` (one JSON line per file and question, the
answer at its characters), and the errors, each found before any model is built where it can be."""

import importlib
import json

import pytest
import transformers

from longdoc.cli import build_parser, main
from longdoc.convert import convert
from longdoc.data.qa import read_qa
from longdoc.families import get_family
from longdoc.metrics.qa import squad_metrics
from longdoc.tasks import get_task
from longdoc.tasks.qa import QuestionAnsweringTask
from qa_toy_data import FAMILY_SETTINGS, QUESTION, write_toy_qa
from tiny_checkpoints import tiny_bert

training = importlib.import_module("longdoc.training.train")  # the module (longdoc.training.train is its function)
ANSWER_FIELDS = {"file", "question", "answer", "score", "start", "end"}
FLAGS = {
    "longformer": ["--max-length", "128"],
    "lsg": ["--max-length", "128", "--block-size", "16", "--sparse-block-size", "16", "--no-gradient-checkpointing",
            "--gradient-accumulation-steps", "2"],
    "hat": ["--max-sentences", "4", "--max-sentence-size", "32", "--doc-stride", "20", "--max-answer-length", "12"],
}
UNANSWERABLE = {"longformer": 0, "lsg": 2, "hat": 2}  # dev questions without an answer (SQuAD 2.0 style)


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    monkeypatch.setenv("LONGDOC_BF16", "0")  # training, evaluate and answer decide alike on any CPU


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("bert"), max_positions=64)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("family", ["longformer", "lsg", "hat"])
def test_train_evaluate_answer(family, bert, tmp_path, capsys, monkeypatch):
    unanswerable = UNANSWERABLE[family]
    train = write_toy_qa(tmp_path / "train.jsonl", 12, seed=0, unanswerable=unanswerable)
    dev = write_toy_qa(tmp_path / "dev.jsonl", 6, seed=1, unanswerable=unanswerable)
    stages = []
    fit = training.fit
    monkeypatch.setattr(training, "fit", lambda stage, *rest: (stages.append(stage), fit(stage, *rest)))
    code, out, err = run(capsys, "train", "--task", "question-answering", "--family", family, "--model", bert,
                         "--train", train, "--validation", dev, "--output", tmp_path / "model", "--epochs", 2,
                         "--batch-size", 4, "--learning-rate", "1e-3", *FLAGS[family])
    assert code == 0, err
    assert "saved the best model (epoch" in out and "dev: exact match" in out
    assert "LOAD REPORT" not in err  # the new QA head is expected: one log line, not transformers' report
    # the window settings it trained with are in the saved config
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    expected = {"longformer": (128, 32, 200), "lsg": (128, 32, 200), "hat": (128, 20, 12)}[family]
    assert config["question_answering"] == dict(zip(("max_length", "doc_stride", "max_answer_length"), expected),
                                                handle_impossible_answer=unanswerable > 0)
    (stage,) = stages
    assert stage.arguments["activation_checkpointing"] is (family != "lsg")  # on unless --no-gradient-checkpointing
    assert stage.arguments["gradient_accumulation_steps"] == (2 if family == "lsg" else 1)
    assert stage.arguments["bf16"] is False
    assert len(stage.train_items) > 12 and len(stage.dev_items) > 6  # contexts longer than one window

    code, out, err = run(capsys, "evaluate", tmp_path / "model", dev)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    metrics = json.loads(lines[0])
    assert metrics["total"] == 6 and 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    assert set(metrics["by_answer_position"]) == {"<512", "512-2048", "2048-4096", ">=4096"}
    assert metrics["by_answer_position"]["<512"]["count"] == 6 - unanswerable
    assert metrics["questions_per_second"] > 0 and metrics["max_length"] == 128
    if unanswerable:
        assert {"HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_f1", "best_f1_thresh"} <= set(metrics)
    else:
        assert "NoAns_f1" not in metrics
    # the saved model's dev scores are evaluate's on the same file
    report = json.loads((tmp_path / "model" / "training_report.json").read_text())
    assert report["dev_metrics"]["f1"] == pytest.approx(metrics["f1"], abs=1e-9)
    assert report["dev_metrics"]["exact_match"] == pytest.approx(metrics["exact_match"], abs=1e-9)

    # `answer`: one line per (file, question); its answers score as evaluate says
    records = read_qa(dev)
    files = []
    for record in records:
        files.append(tmp_path / f"{record.id}.txt")
        files[-1].write_text(record.context)
    code, out, err = run(capsys, "answer", tmp_path / "model", *files, "--question", QUESTION, "--question",
                         "w1 w2", "--top-k", 2)
    assert code == 0, err
    answers = [json.loads(line) for line in out.strip().splitlines()]
    assert [(a["file"], a["question"]) for a in answers] == [(str(f), q) for f in files for q in (QUESTION, "w1 w2")]
    for answer in answers:
        assert set(answer) == ANSWER_FIELDS | {"answers"} and len(answer["answers"]) == 2
        text = open(answer["file"]).read()
        for shown in (answer, *answer["answers"]):
            if shown["answer"] == "":
                assert shown["start"] is None and shown["end"] is None
            else:
                assert text[shown["start"]:shown["end"]] == shown["answer"]
        assert {k: answer[k] for k in ("answer", "score", "start", "end")} == answer["answers"][0]
    predictions = {r.id: a["answer"] for r, a in zip(records, answers[::2])}
    scores = squad_metrics(predictions, records)
    assert (scores["exact_match"], scores["f1"]) == pytest.approx((metrics["exact_match"], metrics["f1"]), abs=1e-9)


def test_flags_reach_the_training_options():
    parser = build_parser()
    base = ["train", "--task", "qa", "--model", "m", "--train", "t", "--validation", "v", "--output", "o"]
    task = get_task("qa")
    assert isinstance(task, QuestionAnsweringTask) and task is get_task("extractive-qa")
    defaults = task.training_options(parser.parse_args(base))
    assert defaults["gradient_checkpointing"] is True and defaults["max_answer_length"] is None
    given = task.training_options(parser.parse_args(base + ["--no-gradient-checkpointing", "--doc-stride", "64",
                                                            "--max-answer-length", "30", "--max-length", "1024"]))
    assert (given["gradient_checkpointing"], given["doc_stride"], given["max_answer_length"], given["max_length"]) == \
        (False, 64, 30, 1024)
    answer_help = " ".join(parser._subparsers._group_actions[0].choices["answer"].format_help().split())
    assert "--max-answer-length" in answer_help and "else 200, for paragraph-long answers" in answer_help


def test_negative_windows_keep_every_answer_and_a_seeded_share_of_the_rest():
    from longdoc.tasks.qa import keep_negative_windows

    items = [{"start_positions": 0 if i % 4 else 7, "index": i} for i in range(40)]  # 10 answered, 30 answerless
    assert keep_negative_windows(items, None, 0) is items and keep_negative_windows(items, 1.0, 0) is items
    kept = keep_negative_windows(items, 0.2, seed=3)
    assert [i["index"] for i in kept if i["start_positions"]] == list(range(0, 40, 4))  # every answered one, in order
    assert sum(not i["start_positions"] for i in kept) == 6
    assert kept == keep_negative_windows(items, 0.2, seed=3) and kept != keep_negative_windows(items, 0.2, seed=4)
    assert [i["index"] for i in kept] == sorted(i["index"] for i in kept)
    assert all(i["start_positions"] for i in keep_negative_windows(items, 0.0, seed=3))
    given = QuestionAnsweringTask().training_options(build_parser().parse_args(
        ["train", "--task", "qa", "--model", "m", "--train", "t", "--validation", "v", "--output", "o",
         "--negative-windows", "0.25"]))
    assert given["negative_windows"] == 0.25


def test_lsg_conversion_records_the_separator(bert, tmp_path):
    """QA models find the question before the first separator: the converted config names it."""
    convert(bert, tmp_path / "lsg", to="lsg", max_length=128, block_size=16, sparse_block_size=16)
    config = json.loads((tmp_path / "lsg" / "config.json").read_text())
    assert config["sep_token_id"] == transformers.AutoTokenizer.from_pretrained(bert).sep_token_id == 3


# --- errors ----------------------------------------------------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model is built: the errors below must come first."""
    def build(self, run):
        raise AssertionError("a model was built before the error was found")

    monkeypatch.setattr(QuestionAnsweringTask, "build", build)


def train_args(bert, tmp_path, *extra):
    train = tmp_path / "train.jsonl"
    if not train.exists():
        write_toy_qa(train, 4, seed=2)
    return ["train", "--task", "qa", "--model", bert, "--train", train, "--validation", train, "--output",
            tmp_path / "model", *extra]


def test_training_errors_come_before_any_model(bert, tmp_path, capsys, no_model, monkeypatch):
    code, _, err = run(capsys, *train_args(bert, tmp_path, "--max-length", "128", "--doc-stride", "128"))
    assert code == 1 and "--doc-stride (128) must be smaller than --max-length (128)" in err
    code, _, err = run(capsys, *train_args(bert, tmp_path, "--negative-windows", "1.5"))
    assert code == 1 and "--negative-windows 1.5: give the share of answerless windows to keep" in err

    long_question = tmp_path / "long.jsonl"
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["question"] = " ".join(["w1"] * 130)
    long_question.write_text("\n".join(lines[:2] + [json.dumps(record)] + lines[3:]) + "\n")
    code, _, err = run(capsys, *train_args(bert, tmp_path, "--max-length", "128", "--train", long_question))
    assert code == 1 and f"{long_question}:3: the question is 130 tokens long" in err
    assert "leaves no room for context in windows of 128 tokens" in err
    code, _, err = run(capsys, *train_args(bert, tmp_path, "--family", "hat", "--max-sentence-size", "32",
                                           "--train", long_question))
    assert code == 1 and f"{long_question}:3: the question is 130 tokens long" in err and "HAT segments of 32" in err

    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    code, _, err = run(capsys, *train_args(bert, tmp_path, "--validation", broken))
    assert code == 1 and f"{broken}:2: malformed JSON" in err

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: transformers.ByT5Tokenizer())
    code, _, err = run(capsys, *train_args(bert, tmp_path))
    assert code == 1 and "ByT5Tokenizer) is a slow (Python) one" in err and "needs a fast tokenizer" in err
    assert not (tmp_path / "model").exists()


def test_answer_errors_name_the_model_or_file(bert, tmp_path, capsys):
    text = tmp_path / "page.txt"
    text.write_text("w10 w11 w12")
    code, _, err = run(capsys, "answer", tmp_path, text, "--question", QUESTION)
    assert code == 1 and "not a longdoc or transformers checkpoint (no config.json)" in err
    classifier, tokenizer = get_family("longformer").build("classification", str(bert), {
        "work_dir": str(tmp_path), "max_length": 128, "head_config": {"num_labels": 2}})
    classifier.save_pretrained(tmp_path / "classifier")
    tokenizer.save_pretrained(tmp_path / "classifier")
    code, _, err = run(capsys, "answer", tmp_path / "classifier", text, "--question", QUESTION)
    assert code == 1 and "holds a document classifier, trained with `longdoc train --task classification`" in err
    assert "train one with `longdoc train --task question-answering`" in err

    qa, qa_tokenizer = get_family("longformer").build("spans", str(bert), {"work_dir": str(tmp_path / "qa-work"),
                                                                           "max_length": 128})
    qa.save_pretrained(tmp_path / "qa")
    qa_tokenizer.save_pretrained(tmp_path / "qa")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    code, _, err = run(capsys, "answer", tmp_path / "qa", text, empty, "--question", QUESTION)
    assert code == 1 and f"{empty}: the file is empty" in err
    code, _, err = run(capsys, "answer", tmp_path / "qa", text, "--question", QUESTION, "--max-length", "64",
                       "--doc-stride", "64")
    assert code == 1 and "doc_stride (64) must be at least 0 and smaller than the window (max_length 64)" in err
    code, _, err = run(capsys, "predict", tmp_path / "qa", text)
    assert code == 1 and "is a question-answering model: ask it with `longdoc answer" in err
    code, out, err = run(capsys, "answer", tmp_path / "qa", text, "--question", QUESTION)
    assert code == 0 and set(json.loads(out)) == ANSWER_FIELDS
