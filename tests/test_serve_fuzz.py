"""Fuzzing the service's OpenAPI schema with schemathesis (its command line, against a real uvicorn server
with a tiny model of every served kind): no generated request, valid or not, gets a 5xx, and the server
answers as before afterwards."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from longdoc.serve import ServeSettings, ServerThread, create_app, load_served_models
from serve_tiny_models import build_models

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folders = build_models(tmp_path_factory.mktemp("fuzz"))
    specs = [f"clf={folders['classifier']}", f"lf={folders['longformer']}", f"tagger={folders['sentences']}",
             f"qa={folders['qa']}", f"sum={folders['summarizer']}"]
    settings = ServeSettings(max_document_tokens=2000, timeout=20)
    with ServerThread(create_app(load_served_models(specs), settings)) as running:
        yield running


def test_no_generated_request_gets_a_server_error(server, tmp_path):
    assert SCHEMATHESIS, "schemathesis is not installed in the test virtualenv (the web-tests extra)"
    probe = {"text": "w10 w11 w7 w8", "question": "w7"}
    before = httpx.post(server.url + "/v1/models/qa/answer", json=probe).json()
    run = subprocess.run([SCHEMATHESIS, "run", server.url + "/openapi.json", "--checks", "not_a_server_error",
                          "--max-examples", "25", "--seed", "7", "--no-color", "--workers", "1",
                          "--generation-database", "none", "--request-timeout", "30",
                          "--report-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    operations = len(httpx.get(server.url + "/openapi.json").json()["paths"])
    assert operations == 9  # the 5 models' endpoints, /v1/models, /health, /ready, /metrics
    assert re.search(rf"Tested: {operations}\b", run.stdout), run.stdout[-3000:]  # every one of them was fuzzed
    assert httpx.post(server.url + "/v1/models/qa/answer", json=probe).json() == before
