"""The HTTP service on a real uvicorn server (localhost, a free port) with tiny models of every served kind
(tests/serve_tiny_models.py): concurrent clients get the CLI's answers, the listing and probes, every bad
input a 4xx with a JSON message that changes nothing for later requests, the size limits, and
`longdoc serve` itself in a subprocess."""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from longdoc.cli import main
from longdoc.serve import ServeSettings, ServerThread, create_app, load_served_models, parse_model_specs
from serve_tiny_models import build_models, documents, sentences_text

MAX_DOCUMENT_TOKENS = 3000
MAX_BODY_BYTES = 100_000


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(folders):
    specs = [f"classifier={folders['classifier']}", f"lf={folders['longformer']}", str(folders["sentences"]),
             f"qa={folders['qa']}", str(folders["summarizer"])]
    app = create_app(load_served_models(specs), ServeSettings(max_document_tokens=MAX_DOCUMENT_TOKENS,
                                                              max_body_bytes=MAX_BODY_BYTES, max_batch_tokens=4096))
    with ServerThread(app) as running:
        yield running


def post_all(url: str, calls: list[tuple[str, dict]]) -> list[httpx.Response]:
    """All the calls at once, from concurrent clients."""
    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.post(path, json=body) for path, body in calls))

    return asyncio.run(run())


def cli_lines(capsys, arguments: list[str]) -> list[dict]:
    assert main(arguments) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def assert_same(served, printed, tolerance=1e-5):
    """The same JSON; numbers within `tolerance` (a document's scores move by float noise with its batch)."""
    if isinstance(printed, dict):
        assert isinstance(served, dict) and set(served) == set(printed), (served, printed)
        for key in printed:
            assert_same(served[key], printed[key], tolerance)
    elif isinstance(printed, list):
        assert isinstance(served, list) and len(served) == len(printed), (served, printed)
        for a, b in zip(served, printed):
            assert_same(a, b, tolerance)
    elif isinstance(printed, float):
        assert served == pytest.approx(printed, abs=tolerance)
    else:
        assert served == printed


def write_texts(folder: Path, texts: list[str]) -> list[str]:
    folder.mkdir(exist_ok=True)
    names = []
    for index, text in enumerate(texts):
        (folder / f"doc{index}.txt").write_text(text)
        names.append(str(folder / f"doc{index}.txt"))
    return names


def test_concurrent_answers_equal_the_cli(server, folders, tmp_path, capsys):
    texts = documents(8, seed=1)
    files = write_texts(tmp_path, texts)
    short = documents(4, seed=2, words=80)  # within the summarizer's 96 positions
    short_files = write_texts(tmp_path / "short", short)
    tagged = [sentences_text(random.Random(i)) for i in range(3)]  # texts the sentence model splits
    tagged_files = write_texts(tmp_path / "tagged", tagged)
    lists = [["w10 w11 w12.", "w7 w7 w7 w8."], ["w13 w14 w15 w16 w17."]]  # sentence lists, in a JSONL file
    (tmp_path / "lists.jsonl").write_text("".join(json.dumps({"sentences": s}) + "\n" for s in lists))

    expected = {
        "classify": cli_lines(capsys, ["predict", str(folders["classifier"]), *files]),
        "explain": cli_lines(capsys, ["predict", str(folders["classifier"]), *files[:2], "--explain",
                                      "--top-segments", "2", "--top-sentences", "1"]),
        "lf": cli_lines(capsys, ["predict", str(folders["longformer"]), *files]),
        "sentences": cli_lines(capsys, ["predict", str(folders["sentences"]), *tagged_files,
                                        str(tmp_path / "lists.jsonl")]),
        "answer": cli_lines(capsys, ["answer", str(folders["qa"]), *files, "--question", "w7 w8", "--top-k", "2"]),
        "summarize": cli_lines(capsys, ["summarize", str(folders["summarizer"]), *short_files, "--num-beams", "2",
                                        "--max-length", "8"]),
    }
    calls = ([("/v1/models/classifier/classify", {"text": t}) for t in texts]
             + [("/v1/models/classifier/classify", {"text": t, "explain": True, "top_segments": 2, "top_sentences": 1})
                for t in texts[:2]]
             + [("/v1/models/lf/classify", {"text": t}) for t in texts]
             + [("/v1/models/sentences/classify", {"text": t}) for t in tagged]
             + [("/v1/models/sentences/classify", {"sentences": s}) for s in lists]
             + [("/v1/models/qa/answer", {"text": t, "question": "w7 w8", "top_k": 2}) for t in texts]
             + [("/v1/models/summarizer/summarize", {"text": t, "num_beams": 2, "max_length": 8}) for t in short])
    responses = post_all(server.url, calls)
    assert [r.status_code for r in responses] == [200] * len(calls), [r.text for r in responses if r.status_code != 200]
    served = iter(r.json() for r in responses)
    for kind, key in (("classify", "document"), ("explain", "document"), ("lf", "document"),
                      ("sentences", "document"), ("answer", "file"), ("summarize", "source")):
        for printed in expected[kind]:
            printed.pop(key)
            assert_same(next(served), printed)
    metrics = metric_samples(server.url)
    batches = {s.labels["model"]: s.value for s in metrics if s.name == "longdoc_batch_size_count"}
    requests = {s.labels["model"]: s.value for s in metrics if s.name == "longdoc_batch_size_sum"}
    assert requests["classifier"] >= 10 and batches["classifier"] < requests["classifier"]  # batched


def metric_samples(url: str) -> list:
    text = httpx.get(url + "/metrics").text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_listing_probes_docs_and_metrics(server):
    listing = httpx.get(server.url + "/v1/models").json()["models"]
    by_name = {m["name"]: m for m in listing}
    assert list(by_name) == ["classifier", "lf", "sentences", "qa", "summarizer"]
    assert by_name["classifier"]["labels"] == ["alpha", "beta"] and by_name["classifier"]["family"] == "segment"
    assert by_name["qa"]["action"] == "answer" and by_name["summarizer"]["endpoint"] == "/v1/models/summarizer/summarize"
    assert by_name["lf"]["max_document_tokens"] == 126 and by_name["sentences"]["head"] == "sentences"
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").json()["status"] == "ready"
    schema = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/models/qa/answer", "/v1/models/lf/classify", "/v1/models", "/ready"} <= set(schema["paths"])
    body = schema["components"]["schemas"]["QuestionAnsweringRequest"]
    assert set(body["required"]) == {"text", "question"} and body["additionalProperties"] is False
    assert httpx.get(server.url + "/docs").status_code == 200
    names = {sample.name for sample in metric_samples(server.url)}
    assert {"longdoc_requests_total", "longdoc_request_seconds_bucket", "longdoc_queue_depth"} <= names


BAD_REQUESTS = [
    # (path, JSON body or raw bytes, status, error type, words of the message)
    ("/v1/models/nobody/classify", {"text": "w10"}, 404, "unknown_model", "no model named 'nobody'"),
    ("/v1/models/classifier/answer", {"text": "w10"}, 404, "unknown_task", "answers POST /v1/models/classifier/classify"),
    ("/v1/models/classifier/classify", {}, 422, "invalid_request", "text: this field is required"),
    ("/v1/models/classifier/classify", {"text": 12}, 422, "invalid_request", "text: Input should be a valid string"),
    ("/v1/models/classifier/classify", {"text": "w10", "explain": "yes"}, 422, "invalid_request", "explain:"),
    ("/v1/models/classifier/classify", {"text": "w10", "top_segments": 0}, 422, "invalid_request", "top_segments:"),
    ("/v1/models/classifier/classify", {"text": "w10", "colour": 1}, 422, "invalid_request",
     "colour: unknown field (the fields are text, explain"),
    ("/v1/models/classifier/classify", {"text": ""}, 422, "invalid_request", "text: String should have at least 1"),
    ("/v1/models/classifier/classify", {"text": " \n\t "}, 422, "invalid_request", "text is blank"),
    ("/v1/models/classifier/classify", ["w10"], 422, "invalid_request", "must be a JSON object"),
    ("/v1/models/qa/answer", {"question": "w7 w8"}, 422, "invalid_request", "text: this field is required"),
    ("/v1/models/qa/answer", {"text": "w10 w11", "question": "  "}, 422, "invalid_request", "question is blank"),
    ("/v1/models/qa/answer", {"text": "w10", "question": "w7", "max_length": 10**6}, 422, "invalid_request",
     "longer than the model reads"),
    ("/v1/models/summarizer/summarize", {"text": "w10", "min_length": 9, "max_length": 4}, 422, "invalid_request",
     "min_length (9) is larger than max_length (4)"),
    ("/v1/models/sentences/classify", {}, 422, "invalid_request", "give either text"),
    ("/v1/models/sentences/classify", {"sentences": [" ", ""]}, 422, "invalid_request", "sentences are all blank"),
    ("/v1/models/classifier/classify", b'{"text": "\xff\xfe w10"}', 400, "bad_encoding", "not UTF-8"),
    ("/v1/models/classifier/classify", b'{"text": "w10"', 422, "invalid_request", "not valid JSON"),
    ("/v1/models/classifier/classify", b'', 422, "invalid_request", "the body is empty"),
    ("/v1/models/classifier/classify", b'{"text": "w10 \\ud800"}', 422, "invalid_request", "text:"),
    ("/v1/models/summarizer/summarize", b'{"text": "w10", "length_penalty": NaN}', 422, "invalid_request",
     "length_penalty: Input should be a finite number"),
    ("/v1/models/lf/classify", {"text": " ".join(["w10"] * 200)}, 413, "document_too_large",
     "the document is 200 tokens long and this model reads at most 126"),
    ("/v1/models/classifier/classify", {"text": " ".join(["w10"] * 4000)}, 413, "document_too_large",
     f"this server takes at most {MAX_DOCUMENT_TOKENS:,} tokens per document (--max-document-tokens)"),
    ("/v1/models/classifier/classify", {"text": "w10 " * 30000}, 413, "body_too_large",
     f"larger than this server takes ({MAX_BODY_BYTES:,} bytes, --max-body-bytes)"),
    ("/v1/models/summarizer/summarize", {"text": " ".join(["w10"] * 200)}, 413, "document_too_large",
     "reads at most 94"),
]


def test_every_bad_input_is_a_4xx_naming_the_problem_and_changes_nothing(server):
    good = [("/v1/models/classifier/classify", {"text": t}) for t in documents(3, seed=5)]
    before = [r.json() for r in post_all(server.url, good)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path, body, status, kind, words in BAD_REQUESTS:
            if isinstance(body, bytes):
                response = client.post(path, content=body, headers={"content-type": "application/json"})
            else:
                response = client.post(path, json=body)
            assert response.status_code == status, (path, body, response.text)
            error = response.json()["error"]
            assert error["type"] == kind and words in error["message"], (path, error)
            assert "Traceback" not in response.text
        assert client.get("/v1/models/classifier/classify").status_code == 405
        assert client.get("/nowhere").json()["error"]["type"] == "not_found"
    after = [r.json() for r in post_all(server.url, good)]
    assert after == before


def test_a_long_summary_input_may_be_truncated_on_request(server):
    text = " ".join(["w10 w11"] * 100)
    response = httpx.post(server.url + "/v1/models/summarizer/summarize",
                          json={"text": text, "truncate": True, "max_length": 6, "num_beams": 1}, timeout=60)
    assert response.status_code == 200 and response.json()["truncated"] is True
    assert isinstance(response.json()["summary"], str)


def test_a_long_document_is_classified_from_its_beginning_only_on_request(server, folders):
    from longdoc.pipelines import load_pipeline

    text = " ".join(f"w{10 + i % 40}" for i in range(400))  # 400 tokens; the Longformer reads 126
    url = server.url + "/v1/models/lf/classify"
    assert httpx.post(url, json={"text": text}, timeout=60).status_code == 413
    cut = httpx.post(url, json={"text": text, "truncate": True}, timeout=60).json()
    whole = httpx.post(url, json={"text": "w10 w11 w12", "truncate": True}, timeout=60).json()
    assert cut["truncated"] is True and "truncated" not in whole
    expected = load_pipeline(folders["longformer"], device="cpu").predict([text])[0]  # what longdoc predict reads
    assert cut["labels"] == expected.labels
    assert cut["scores"] == pytest.approx(expected.scores, abs=1e-5)


def test_a_hat_classifier_reads_its_first_segments_on_request_and_refuses_otherwise(tmp_path):
    from longdoc.families import get_family
    from longdoc.pipelines import load_pipeline
    from serve_tiny_models import LABELS, _save
    from tiny_checkpoints import tiny_bert

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model, tokenizer = get_family("hat").build(
        "classification", str(tiny_bert(tmp_path / "bert", max_positions=64)),
        {"head_config": LABELS.config_fields(), "max_sentences": 4, "max_sentence_size": 16,
         "work_dir": str(tmp_path / "work")})
    folder = _save(model, tokenizer, tmp_path / "hat")
    text = ". ".join(" ".join(f"w{10 + (i * 7 + j) % 40}" for j in range(9)) for i in range(30)) + "."
    with ServerThread(create_app(load_served_models([f"hat={folder}"]), ServeSettings())) as running:
        url = running.url + "/v1/models/hat/classify"
        refused = httpx.post(url, json={"text": text}, timeout=60)
        cut = httpx.post(url, json={"text": text, "truncate": True}, timeout=60)
        again = httpx.post(url, json={"text": text}, timeout=60)
    assert refused.status_code in (413, 422) and again.status_code == refused.status_code  # the model's own setting
    assert cut.status_code == 200 and cut.json()["truncated"] is True
    expected = load_pipeline(folder, device="cpu", truncate=True).predict([text])[0]
    assert cut.json()["labels"] == expected.labels
    assert cut.json()["scores"] == pytest.approx(expected.scores, abs=1e-5)


def test_model_specs_name_models_and_refuse_clashes(tmp_path):
    (tmp_path / "a").mkdir()
    assert parse_model_specs([str(tmp_path / "a"), f"b={tmp_path / 'a'}"]) == [("a", str(tmp_path / "a")),
                                                                              ("b", str(tmp_path / "a"))]
    with pytest.raises(ValueError, match="two models are named 'a'"):
        parse_model_specs([str(tmp_path / "a"), f"a={tmp_path}"])
    with pytest.raises(ValueError, match="cannot be part of a URL"):
        parse_model_specs([f"my model={tmp_path / 'a'}"])
    with pytest.raises(ValueError, match="no such model folder"):
        load_served_models([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="--max-batch-tokens must be at least 1"):
        ServeSettings(max_batch_tokens=0)


def test_longdoc_serve_prints_its_url_answers_and_stops_on_ctrl_c(folders):
    command = [sys.executable, "-m", "longdoc.cli", "serve", f"tiny={folders['classifier']}", "--port", "0",
               "--api-key", "sesame"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        assert line.startswith("longdoc serve: listening on http://127.0.0.1:"), (line, process.stderr.read())
        url = line.split()[4]
        assert httpx.get(url + "/ready").status_code == 200
        path = url + "/v1/models/tiny/classify"
        assert httpx.post(path, json={"text": "w10 w11"}).status_code == 401
        assert httpx.post(path, json={"text": "w10 w11"}, headers={"X-API-Key": "sesame"}).json()["labels"]
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, process.stderr.read()


def test_the_onnx_runtime_serves_an_exported_model_alike(server, folders, tmp_path):
    from longdoc.export import export_onnx

    export_onnx(folders["classifier"], tmp_path / "onnx")
    models = load_served_models([f"clf={tmp_path / 'onnx'}"], runtime="onnx")
    text = documents(1, seed=9)[0]
    with ServerThread(create_app(models, ServeSettings(runtime="onnx"))) as onnx_server:
        listed = httpx.get(onnx_server.url + "/v1/models").json()["models"][0]
        exported = httpx.post(onnx_server.url + "/v1/models/clf/classify", json={"text": text}).json()
    original = httpx.post(server.url + "/v1/models/classifier/classify", json={"text": text}).json()
    assert listed["runtime"] == "onnx" and listed["labels"] == ["alpha", "beta"]
    assert_same(exported, original, tolerance=1e-3)
