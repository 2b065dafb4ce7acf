"""A bounded load test of a running service: N concurrent clients send a fixed list of requests, and the
answers, throughput and latency percentiles come back (tests/test_serve_load.py, benchmarks/bench_serve.py).

    result = run_load(url, [("/v1/models/m/classify", {"text": t}) for t in texts], clients=8)
    result.answers[i]       # the JSON of call i, whatever the order they were answered in
    result.summary()        # {"clients", "requests", "seconds", "requests_per_second", "p50_ms", ...}

Needs httpx (the web-tests extra).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    clients: int
    seconds: float  # wall time of the whole run
    latencies: list[float]  # seconds per call, in call order
    statuses: list[int]
    answers: list = field(repr=False)  # the JSON of each call (None where it was not JSON)

    def percentile(self, share: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds (share 0.95: p95)."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    def summary(self) -> dict:
        return {"clients": self.clients, "requests": len(self.latencies), "errors": sum(s != 200 for s in self.statuses),
                "seconds": round(self.seconds, 3), "requests_per_second": round(len(self.latencies) / self.seconds, 2),
                **{f"p{round(100 * q)}_ms": round(1000 * self.percentile(q), 1) for q in (0.5, 0.95, 0.99)}}


def run_load(url: str, calls: list[tuple[str, dict]], clients: int, headers: dict | None = None,
             timeout: float = 300.0) -> LoadResult:
    """Send every (path, JSON body) of `calls` to the service at `url` from `clients` concurrent clients
    (each its own connection, taking the next call as soon as its last one is answered)."""
    return asyncio.run(_load(url, calls, clients, headers or {}, timeout))


async def _load(url, calls, clients, headers, timeout) -> LoadResult:
    import httpx

    latencies, statuses, answers = [0.0] * len(calls), [0] * len(calls), [None] * len(calls)
    queue: asyncio.Queue = asyncio.Queue()
    for index in range(len(calls)):
        queue.put_nowait(index)

    async def client_loop():
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as client:
            while not queue.empty():
                index = queue.get_nowait()
                path, body = calls[index]
                start = time.perf_counter()
                response = await client.post(path, json=body)
                latencies[index] = time.perf_counter() - start
                statuses[index] = response.status_code
                try:
                    answers[index] = response.json()
                except ValueError:
                    answers[index] = None

    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return LoadResult(clients, time.perf_counter() - start, latencies, statuses, answers)


def same_answers(first, second, tolerance: float = 1e-5) -> bool:
    """Equal JSON, numbers within `tolerance` (a document's scores move by float noise with its batch-mates:
    padding changes the order of sums)."""
    if isinstance(first, dict):
        return (isinstance(second, dict) and first.keys() == second.keys()
                and all(same_answers(first[k], second[k], tolerance) for k in first))
    if isinstance(first, list):
        return (isinstance(second, list) and len(first) == len(second)
                and all(same_answers(a, b, tolerance) for a, b in zip(first, second)))
    if isinstance(first, float) or isinstance(second, float):
        return (isinstance(first, (int, float)) and isinstance(second, (int, float))
                and not isinstance(first, bool) and abs(first - second) <= tolerance)
    return first == second


def batch_counts(metrics_text: str) -> dict[str, tuple[float, float]]:
    """model -> (batches, requests in them) from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in ("longdoc_batch_size_count", "longdoc_batch_size_sum"):
                entry = counts.setdefault(sample.labels["model"], [0.0, 0.0])
                entry[0 if sample.name.endswith("_count") else 1] = sample.value
    return {model: (batches, requests) for model, (batches, requests) in counts.items()}
