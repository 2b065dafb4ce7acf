"""The service's settings (`longdoc serve` flags; `create_app` and the Ray replicas take the same object)."""

from __future__ import annotations

from dataclasses import dataclass

RUNTIMES = ("torch", "onnx")


@dataclass
class ServeSettings:
    max_batch_tokens: int = 16384  # padded tokens per forward (tokens of the longest x count)
    max_concurrent_requests: int = 64  # requests queued or running; above: 429 with Retry-After
    timeout: float = 60.0  # seconds per request; above: 504
    api_key: str | None = None  # when set: header `Authorization: Bearer KEY` or `X-API-Key: KEY`, else 401
    max_document_tokens: int | None = None  # larger documents: 413 naming the limit (None: no limit but the body's)
    max_body_bytes: int = 10_000_000  # 413 above
    runtime: str = "torch"  # "torch" or "onnx"

    def __post_init__(self):
        for name in ("max_batch_tokens", "max_concurrent_requests", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.timeout > 0:
            raise ValueError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.max_document_tokens is not None and self.max_document_tokens < 1:
            raise ValueError(f"--max-document-tokens must be at least 1, got {self.max_document_tokens}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key is empty: give a key, or leave the flag out to serve without one")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"--runtime {self.runtime!r}: use one of {', '.join(RUNTIMES)}")
