"""The service's batching and its robustness, on a real uvicorn server with a stand-in task whose predictions
wait at a gate the test opens: batches pack alike lengths within the token budget and never mix options,
a full queue answers 429 with Retry-After, a slow request 504, a client that leaves is dropped from the
queue, a bad request in a batch fails alone, and the API key is required when set. The server answers
normally after each."""

import asyncio
import threading
import time

import httpx
import pytest

from longdoc.errors import DataError
from longdoc.serve import ServeSettings, ServerThread, create_app
from longdoc.serve.batching import TokenBudgetBatcher, pack_by_length
from longdoc.serve.models import ServedModel
from longdoc.tasks.base import RequestField, Task

ECHO = "/v1/models/echo/echo"


class GatedEcho(Task):
    """Answers {"echo": text, "batch": its batch's size}; a word is a token; each batch waits at the gate and
    is recorded; the text "bad" fails the pipeline (as a model's DataError would)."""

    name = "gated-echo"
    head = "classification"
    serve_action = "echo"

    def __init__(self):
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def serve_fields(self):
        return [RequestField("text", str, min_length=1), RequestField("mode", str, "plain")]

    def serve_tokens(self, tokenizer, request):
        return len(request["text"].split())

    def serve_batch_key(self, request):
        return (request["mode"],)

    def serve_predict(self, pipeline, requests):
        self.batches.append([r["text"] for r in requests])
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        if any(r["text"] == "bad" for r in requests):
            raise DataError("the text 'bad' is refused")
        return [{"echo": r["text"], "mode": r["mode"], "batch": len(requests)} for r in requests]


def echo_server(settings: ServeSettings):
    task = GatedEcho()
    model = ServedModel("echo", "-", task, pipeline=None, action="echo", runtime="torch", _counter=object())
    return task, ServerThread(create_app({"echo": model}, settings))


async def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_pack_by_length_keeps_padded_tokens_within_the_budget():
    lengths = [5, 30, 6, 7, 100, 29, 5]
    batches = pack_by_length(lengths, 60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [4] in batches  # over the budget: alone
    for batch in batches:
        if len(batch) > 1:
            assert max(lengths[i] for i in batch) * len(batch) <= 60
    assert sorted(batches, key=len)[-1] == [3, 2, 0, 6]  # the short ones together, longest first


def test_batches_pack_waiting_requests_by_budget_and_never_mix_options():
    task, server = echo_server(ServeSettings(max_batch_tokens=8))
    with server:
        async def run():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                first = asyncio.ensure_future(client.post(ECHO, json={"text": "first"}))
                await wait_until(lambda: len(task.batches) == 1)  # running: the rest queue behind it
                bodies = ([{"text": "a b"}] * 4 + [{"text": "a b", "mode": "explain"}] * 2
                          + [{"text": " ".join(["long"] * 20)}])
                rest = [asyncio.ensure_future(client.post(ECHO, json=body)) for body in bodies]
                await asyncio.sleep(0.3)
                task.gate.set()
                return await first, await asyncio.gather(*rest)

        first, rest = asyncio.run(run())
    assert first.json() == {"echo": "first", "mode": "plain", "batch": 1}
    answers = [r.json() for r in rest]
    assert [a["batch"] for a in answers] == [4, 4, 4, 4, 2, 2, 1]  # 4 x 2 tokens = 8; 20 tokens run alone
    assert [a["mode"] for a in answers] == ["plain"] * 4 + ["explain"] * 2 + ["plain"]
    assert sorted(map(len, task.batches)) == [1, 1, 2, 4]


def test_a_full_queue_answers_429_with_retry_after_then_serves_again():
    task, server = echo_server(ServeSettings(max_concurrent_requests=2))
    with server:
        async def run():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                held = [asyncio.ensure_future(client.post(ECHO, json={"text": f"held {i}"})) for i in range(2)]
                await wait_until(lambda: len(task.batches) == 1)
                await asyncio.sleep(0.1)
                refused = await client.post(ECHO, json={"text": "one too many"})
                task.gate.set()
                return refused, await asyncio.gather(*held), await client.post(ECHO, json={"text": "later"})

        refused, held, later = asyncio.run(run())
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "2 requests are queued or running (--max-concurrent-requests)" in refused.json()["error"]["message"]
    assert [r.status_code for r in held] == [200, 200] and later.json()["echo"] == "later"


def test_a_request_over_the_timeout_answers_504_and_the_server_goes_on():
    task, server = echo_server(ServeSettings(timeout=0.5))
    with server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            started = time.monotonic()
            slow = client.post(ECHO, json={"text": "slow"})
            assert slow.status_code == 504 and time.monotonic() - started < 5
            assert "no answer within 0.5 s (--timeout)" in slow.json()["error"]["message"]
            task.gate.set()
            assert client.post(ECHO, json={"text": "next"}).json()["echo"] == "next"


def test_a_client_that_leaves_is_dropped_from_the_queue():
    task, server = echo_server(ServeSettings())
    with server:
        async def run():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                running = asyncio.ensure_future(client.post(ECHO, json={"text": "running"}))
                await wait_until(lambda: len(task.batches) == 1)
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as leaving:
                    gone = asyncio.ensure_future(leaving.post(ECHO, json={"text": "gone"}))
                    await asyncio.sleep(0.3)  # queued behind "running"
                    gone.cancel()
                await asyncio.sleep(0.3)
                task.gate.set()
                return await running, await client.post(ECHO, json={"text": "after"})

        running, after = asyncio.run(run())
        metrics = httpx.get(server.url + "/metrics").text
    assert running.json()["echo"] == "running" and after.json()["echo"] == "after"
    assert task.batches == [["running"], ["after"]]  # "gone" never ran
    assert "longdoc_client_disconnects_total 1.0" in metrics


def test_a_bad_request_fails_alone_in_its_batch():
    task, server = echo_server(ServeSettings())
    with server:
        async def run():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                first = asyncio.ensure_future(client.post(ECHO, json={"text": "first"}))
                await wait_until(lambda: len(task.batches) == 1)
                batch = [asyncio.ensure_future(client.post(ECHO, json={"text": t})) for t in ("good", "bad", "fine")]
                await asyncio.sleep(0.3)
                task.gate.set()
                return await first, await asyncio.gather(*batch)

        first, (good, bad, fine) = asyncio.run(run())
    assert sorted(task.batches[1]) == ["bad", "fine", "good"]  # tried together, then one by one
    assert good.json()["echo"] == "good" and fine.json()["echo"] == "fine"
    assert bad.status_code == 422 and bad.json()["error"]["message"] == "the text 'bad' is refused"


@pytest.mark.parametrize("headers, status", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"X-API-Key": "wrong"}, 401),
    ({"Authorization": "Basic sesame"}, 401), ({"Authorization": "Bearer sesame"}, 200), ({"X-API-Key": "sesame"}, 200),
])
def test_the_api_key_is_required_when_set(headers, status):
    task, server = echo_server(ServeSettings(api_key="sesame"))
    task.gate.set()
    with server:
        response = httpx.post(server.url + ECHO, json={"text": "hello"}, headers=headers)
        assert response.status_code == status
        if status == 401:
            assert response.json()["error"]["type"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert httpx.get(server.url + "/health").status_code == 200  # probes need no key


def test_any_batcher_with_submit_can_serve():
    class Direct:
        async def submit(self, model, request, tokens):
            return {"direct": request["text"], "tokens": tokens}

    task = GatedEcho()
    model = ServedModel("echo", "-", task, pipeline=None, action="echo", runtime="torch", _counter=object())
    with ServerThread(create_app({"echo": model}, ServeSettings(), batcher=Direct())) as server:
        assert httpx.post(server.url + ECHO, json={"text": "hi"}).json() == {"direct": "hi", "tokens": task.serve_tokens(
            None, {"text": "hi"})}


def test_the_batcher_refuses_when_stopped_and_survives_a_crash():
    class Broken:
        name = "broken"

        def count_tokens(self, request):
            return 1

        def batch_key(self, request):
            return ()

        def predict_batch(self, requests):
            raise RuntimeError("boom")

    async def run():
        batcher = TokenBudgetBatcher()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(Broken(), {"text": "x"})
        with pytest.raises(RuntimeError, match="boom"):  # the worker lives on
            await batcher.submit(Broken(), {"text": "y"})
        await batcher.stop()
        from longdoc.serve.batching import ShuttingDown

        with pytest.raises(ShuttingDown):
            await batcher.submit(Broken(), {"text": "z"})

    asyncio.run(run())


def test_ready_is_503_once_the_server_starts_to_stop():
    from longdoc.serve.app import mark_shutting_down

    task, server = echo_server(ServeSettings())
    task.gate.set()
    with server:
        assert httpx.get(server.url + "/ready").status_code == 200
        mark_shutting_down(server.server.config.app)
        response = httpx.get(server.url + "/ready")
        assert response.status_code == 503 and response.json()["error"]["message"] == "the server is shutting down"
        assert httpx.post(server.url + ECHO, json={"text": "late"}).status_code == 503
        assert httpx.get(server.url + "/health").status_code == 200
