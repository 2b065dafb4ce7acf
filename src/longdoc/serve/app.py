"""The HTTP service: a FastAPI app with one endpoint per loaded model, answering as the command line does.

    app = create_app(load_served_models(["runs/reviews"]), ServeSettings(max_batch_tokens=8192))

Endpoints: POST /v1/models/{name}/{action} (classify, answer, summarize: the model's task says which),
GET /v1/models, /health, /ready, /metrics (Prometheus), /docs and /openapi.json, and the web page at /
(serve/web, its files under /static). A prediction's answer is the JSON the task's command prints for that
document, less the file name. Requests are batched by `batcher` (default: TokenBudgetBatcher; any object
with `async submit(model, request, tokens) -> dict` will do, e.g. Ray Serve's; `tokens` is the request's
count, made once here). No module-level
`from __future__ import annotations` here: FastAPI reads the endpoints' body types from their annotations.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .batching import QueueFull, ShuttingDown, TokenBudgetBatcher
from .errors import ApiError, install_error_handlers
from .metrics import ServeMetrics
from .middleware import ServiceGuard
from .schemas import ErrorBody, request_model
from .settings import ServeSettings

logger = logging.getLogger("longdoc.serve")

WEB_DIR = Path(__file__).parent / "web"
ERROR_RESPONSES = {status: {"model": ErrorBody, "description": description} for status, description in (
    (400, "the body is not UTF-8, or the request cannot be read"), (401, "no valid API key (when the server has one)"),
    (404, "unknown model or task"), (413, "the body or the document is larger than the server or the model takes"),
    (422, "a missing field, a wrong type, an empty document, an unknown field, or an input the model refuses"),
    (429, "the server holds as many requests as it takes: retry after Retry-After seconds"),
    (500, "the server failed (logged there)"), (503, "the server is shutting down"),
    (504, "no answer within the server's timeout"))}


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def create_app(models: dict, settings: ServeSettings | None = None, batcher=None) -> FastAPI:
    """The service of `models` (name -> ServedModel) under `settings`."""
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    if batcher is None:
        batcher = TokenBudgetBatcher.from_settings(settings, metrics)
    elif getattr(batcher, "metrics", False) is None and hasattr(batcher, "bind_metrics"):
        batcher.bind_metrics(metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if hasattr(batcher, "start"):
            await batcher.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready, app.state.shutting_down = False, True
            if hasattr(batcher, "stop"):
                await batcher.stop()

    app = FastAPI(title="longdoc", version=package_version(), lifespan=lifespan,
                  description="Long-document models over HTTP: one endpoint per model; see GET /v1/models.")
    app.state.models, app.state.settings, app.state.metrics, app.state.batcher = models, settings, metrics, batcher
    app.state.ready, app.state.shutting_down = False, False

    def fields_of(path: str) -> list[str] | None:
        model = model_of_path(models, path)
        return list(request_model(model.task).model_fields) if model else None

    def label_of(path: str) -> tuple[str, str]:
        model = model_of_path(models, path)
        return (model.name, model.action) if model else ("-", path if path in SERVICE_PATHS else "other")

    install_error_handlers(app, metrics, fields_of)
    add_service_routes(app, models)
    for model in models.values():
        add_model_route(app, model)
    add_unknown_model_route(app, models)
    app.add_middleware(ServiceGuard, max_body_bytes=settings.max_body_bytes, api_key=settings.api_key,
                       metrics=metrics, label_of=label_of)
    return app


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("longdoc")
    except PackageNotFoundError:
        return "unknown"


def mark_shutting_down(app: FastAPI) -> None:
    """/ready answers 503 from now on (called when the server starts to stop, before it drains)."""
    app.state.shutting_down = True


SERVICE_PATHS = ("/", "/health", "/ready", "/metrics", "/v1/models", "/docs", "/openapi.json")


def model_of_path(models: dict, path: str):
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v1", "models"]:
        model = models.get(parts[3])
        if model is not None and model.action == parts[4]:
            return model
    return None


def add_service_routes(app: FastAPI, models: dict) -> None:
    @app.get("/health", summary="the process answers")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", summary="200 once the models are loaded; 503 while shutting down",
             responses={503: {"model": ErrorBody, "description": "not ready"}})
    async def ready(request: Request):
        state = request.app.state
        if state.shutting_down or not state.ready:
            raise ApiError(503, "the server is shutting down" if state.shutting_down else "the server is starting",
                           "not_ready")
        return {"status": "ready", "models": list(models)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request):
        registry = request.app.state.metrics
        return Response(registry.render(), media_type=registry.content_type)

    @app.get("/v1/models", summary="the models served, with their endpoints, labels and limits")
    async def list_models():
        return {"models": [model.describe() for model in models.values()]}

    @app.get("/", include_in_schema=False)
    async def page():
        index = WEB_DIR / "index.html"
        if not index.is_file():
            raise ApiError(404, "no web page is installed with this server; the API is at /docs")
        return FileResponse(index)

    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")


def add_model_route(app: FastAPI, model) -> None:
    body_type = request_model(model.task)

    async def predict(body: body_type, request: Request):
        return await answer(request, model, body.model_dump())

    fields = ", ".join(body_type.model_fields)
    app.add_api_route(model.endpoint, predict, methods=["POST"], operation_id=f"{model.action}_{model.name}",
                      summary=f"{model.action} with {model.name} ({model.task.name})", responses=ERROR_RESPONSES,
                      description=f"Fields: {fields}. The answer is the JSON `longdoc` prints for the document, "
                      f"less the file name.", tags=[model.name])


def add_unknown_model_route(app: FastAPI, models: dict) -> None:
    @app.post("/v1/models/{name}/{action}", include_in_schema=False)
    async def unknown(name: str, action: str):
        if name not in models:
            known = ", ".join(models) or "none"
            raise ApiError(404, f"no model named {name!r}; the models are {known} (GET /v1/models)", "unknown_model")
        model = models[name]
        raise ApiError(404, f"model {name!r} is a {model.task.name} model: it answers POST {model.endpoint}, not "
                            f"{action!r}", "unknown_task")


async def answer(request: Request, model, payload: dict):
    """The model's JSON for one request, or the ApiError that says why not."""
    state, started = request.app.state, time.monotonic()
    settings, batcher = state.settings, state.batcher
    if state.shutting_down:
        raise ApiError(503, "the server is shutting down; retry on another replica", "not_ready")
    try:
        model.check(payload)
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    tokens = await asyncio.to_thread(model.count_tokens, payload)
    most = settings.max_document_tokens
    if most is not None and tokens > most:
        raise ApiError(413, f"the document is {tokens:,} tokens long; this server takes at most {most:,} tokens per "
                            f"document (--max-document-tokens): send a shorter document", "document_too_large")
    refusal = model.refusal(payload, tokens)
    if refusal:
        raise ApiError(413, f"model {model.name!r}: {refusal}", "document_too_large")
    submitted = batcher.submit(model, payload, tokens=tokens)  # counted once, here
    remaining = settings.timeout - (time.monotonic() - started)
    try:
        return await until_done_or_gone(submitted, request, remaining)
    except QueueFull as error:
        raise ApiError(429, str(error), "busy", {"Retry-After": str(error.retry_after)}) from None
    except ShuttingDown as error:
        raise ApiError(503, str(error), "not_ready") from None
    except asyncio.TimeoutError:
        raise ApiError(504, f"no answer within {settings.timeout:g} s (--timeout); the server may be busy, or the "
                            f"document too long for this timeout", "timeout") from None
    except ClientGone:
        state.metrics.disconnects.inc()
        return Response(status_code=499)  # nobody reads it
    except ValueError as error:  # DataError and the pipelines' refusals of the client's input
        raise ApiError(422, str(error)) from None
    except Exception:
        logger.exception("%s failed on a request", model.name)
        raise ApiError(500, "the model failed on this request; the failure is logged on the server") from None


async def until_done_or_gone(awaitable, request: Request, timeout: float):
    """The awaitable's result; asyncio.TimeoutError after `timeout` seconds, ClientGone when the client
    disconnects first (either way the awaitable is cancelled: a queued request is dropped)."""
    work = asyncio.ensure_future(awaitable)
    gone = asyncio.ensure_future(wait_for_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({work, gone}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
    if work in done:
        return work.result()
    if gone in done:
        raise ClientGone()
    raise asyncio.TimeoutError()


async def wait_for_disconnect(receive) -> None:
    """Returns when the client disconnects (the ASGI receive after the body says http.disconnect)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # a server that repeats empty body messages must not make this spin
