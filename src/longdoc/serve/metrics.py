"""Prometheus metrics of one service (GET /metrics), in a registry of its own so that several apps (tests,
Ray replicas) in one process keep their counts apart."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = tuple(2**k for k in range(6, 19))  # 64 .. 262144


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("longdoc_requests", "HTTP requests answered, by model, action and status code",
                                ["model", "action", "status"], registry=registry)
        self.latency = Histogram("longdoc_request_seconds", "seconds from a request's arrival to its answer",
                                 ["model", "action"], buckets=LATENCY_BUCKETS, registry=registry)
        self.errors = Counter("longdoc_errors", "error answers (4xx and 5xx) by type", ["type"], registry=registry)
        self.batch_size = Histogram("longdoc_batch_size", "requests per forward pass", ["model"],
                                    buckets=SIZE_BUCKETS, registry=registry)
        self.batch_tokens = Histogram("longdoc_batch_padded_tokens", "padded tokens per forward pass (longest x count)",
                                      ["model"], buckets=TOKEN_BUCKETS, registry=registry)
        self.batch_seconds = Histogram("longdoc_batch_seconds", "seconds per forward pass (batch)", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.tokens = Counter("longdoc_document_tokens", "tokens of the documents run through the models", ["model"],
                              registry=registry)
        self.queue_depth = Gauge("longdoc_queue_depth", "requests queued or running", registry=registry)
        self.disconnects = Counter("longdoc_client_disconnects", "requests whose client left before the answer",
                                   registry=registry)

    def observe_batch(self, model: str, size: int, padded_tokens: int, tokens: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.batch_tokens.labels(model).observe(padded_tokens)
        self.batch_seconds.labels(model).observe(seconds)
        self.tokens.labels(model).inc(tokens)

    def observe_request(self, model: str, action: str, status: int, seconds: float) -> None:
        self.requests.labels(model, action, str(status)).inc()
        self.latency.labels(model, action).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
