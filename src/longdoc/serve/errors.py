"""Every error answer is JSON, `{"error": {"type": ..., "message": ...}}`, with a message that says what was
wrong and how to fix it; a failure of the server itself is a 500 with a generic message (the traceback is
logged, never sent)."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger("longdoc.serve")

STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
                429: "busy", 500: "internal_error", 503: "unavailable", 504: "timeout"}


class ApiError(Exception):
    """An answer other than 200: its status, type, message and any headers (Retry-After...)."""

    def __init__(self, status: int, message: str, type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.type = type or STATUS_TYPES.get(status, "error")


def error_body(type: str, message: str) -> dict:
    return {"error": {"type": type, "message": message}}


def error_bytes(type: str, message: str) -> bytes:
    return json.dumps(error_body(type, message)).encode()


def error_response(error: ApiError, metrics=None) -> JSONResponse:
    if metrics is not None:
        metrics.errors.labels(error.type).inc()
    return JSONResponse(error_body(error.type, error.message), status_code=error.status, headers=error.headers)


def validation_message(errors: list[dict], fields: list[str] | None = None) -> str:
    """FastAPI's validation errors as one readable line: "text: field required; top_k: ..."."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        kind, field = error.get("type", ""), ".".join(location)
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({reason}): send a JSON object like {{\"text\": \"...\"}}")
        elif kind == "missing" and not location:
            parts.append('the body is empty: send a JSON object like {"text": "..."}')
        elif kind == "missing":
            parts.append(f"{field}: this field is required")
        elif kind == "extra_forbidden":
            known = f" (the fields are {', '.join(fields)})" if fields else ""
            parts.append(f"{field}: unknown field{known}")
        elif not location:
            parts.append('the body must be a JSON object like {"text": "..."} with Content-Type: application/json')
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{field}: {message}")
    return "; ".join(parts) or "the request is not valid"


def install_error_handlers(app: FastAPI, metrics=None, fields_of=None) -> None:
    """JSON error answers for ApiError, validation errors, the router's 404/405 and anything unexpected.
    `fields_of(path)`: the fields an endpoint takes (named when a client sends an unknown one)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return error_response(error, metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        fields = fields_of(request.url.path) if fields_of else None
        return error_response(ApiError(422, validation_message(error.errors(), fields)), metrics)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        if error.status_code == 404:
            message = f"no endpoint {request.method} {request.url.path}: see GET /docs for the endpoints"
        elif error.status_code == 405:
            message = f"{request.url.path} does not take {request.method}: see GET /docs for its method"
        elif error.status_code == 400:
            message = "the body cannot be read as JSON: send a JSON object like {\"text\": \"...\"} in UTF-8"
        else:
            message = str(error.detail)
        return error_response(ApiError(error.status_code, message, headers=getattr(error, "headers", None)), metrics)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return error_response(ApiError(500, "the server failed to answer this request; the failure is logged on "
                                            "the server"), metrics)
