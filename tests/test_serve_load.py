"""A bounded load test of the service on a real uvicorn server: 1, 8 and 32 concurrent clients send the
same requests (a tiny segment classifier and a tiny question answerer, documents of varied lengths); it
reports throughput and p50/p95/p99 latency per level, and checks that every answer equals the sequential
run's (scores within 1e-5: a document's float sums move with its batch-mates' padding) and that requests
were batched together under load (the /metrics batch sizes)."""

import httpx
import pytest

from longdoc.serve import ServeSettings, ServerThread, create_app, load_served_models
from longdoc.serve.loadtest import batch_counts, run_load, same_answers
from serve_tiny_models import build_models, documents

REQUESTS = 64
LEVELS = (1, 8, 32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folders = build_models(tmp_path_factory.mktemp("load"), kinds=("classifier", "qa"))
    models = load_served_models([f"clf={folders['classifier']}", f"qa={folders['qa']}"])
    with ServerThread(create_app(models, ServeSettings(max_batch_tokens=4096))) as running:
        yield running


def test_answers_hold_under_load_and_requests_are_batched(server, capsys):
    texts = documents(REQUESTS, seed=3, words=400)  # 60 to 400 words: 4 to 25 segments, 1 to 4 QA windows
    calls = [("/v1/models/clf/classify", {"text": t}) if i % 2 else
             ("/v1/models/qa/answer", {"text": t, "question": "w7 w8 w9"}) for i, t in enumerate(texts)]
    results, batching = {}, {}
    for clients in LEVELS:
        before = batch_counts(httpx.get(server.url + "/metrics").text)
        results[clients] = run_load(server.url, calls, clients)
        after = batch_counts(httpx.get(server.url + "/metrics").text)
        batches = sum(after[m][0] - before.get(m, (0, 0))[0] for m in after)
        batching[clients] = sum(after[m][1] - before.get(m, (0, 0))[1] for m in after) / batches
    with capsys.disabled():
        print(f"\nservice load test, {REQUESTS} requests (half classify, half answer), tiny models, this CPU:")
        print("clients  requests/s   p50 ms   p95 ms   p99 ms   requests per batch")
        for clients, result in results.items():
            s = result.summary()
            print(f"{clients:>7}  {s['requests_per_second']:>10}  {s['p50_ms']:>7}  {s['p95_ms']:>7}  "
                  f"{s['p99_ms']:>7}   {batching[clients]:.2f}")
    sequential = results[1]
    assert sequential.statuses == [200] * REQUESTS and batching[1] == 1.0  # one client: one request per batch
    for clients in LEVELS[1:]:
        result = results[clients]
        assert result.statuses == [200] * REQUESTS
        differing = [i for i, (a, b) in enumerate(zip(result.answers, sequential.answers)) if not same_answers(a, b)]
        assert differing == [], [(result.answers[i], sequential.answers[i]) for i in differing[:3]]
    assert batching[32] > 2  # concurrent requests shared forward passes
