"""Pydantic models of the request bodies (one per task, from its `serve_fields`) and of the error body, so
that /openapi.json describes every endpoint and FastAPI checks each body before any model sees it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator


class ErrorDetail(BaseModel):
    type: str = Field(description="what kind of problem: invalid_request, unknown_model, document_too_large...")
    message: str = Field(description="what was wrong and how to fix it")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer."""

    error: ErrorDetail


class RequestBody(BaseModel):
    """Unknown fields are refused (a misspelt option must not be ignored); types are not coerced ("3" is no
    number); floats are finite; strings must be valid Unicode (JSON's \\ud800 escapes can encode halves)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _unicode_strings(self):
        for name in type(self).model_fields:
            for text in _strings(getattr(self, name)):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as error:
                    raise ValueError(f"{name} holds an unpaired surrogate ({text[error.start]!r} at character "
                                     f"{error.start}): send valid Unicode") from None
        return self


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


_MODELS: dict[str, type[RequestBody]] = {}


def request_model(task) -> type[RequestBody]:
    """The request body of `task`'s endpoint, built once per task from its `serve_fields`."""
    if task.name not in _MODELS:
        fields = {}
        for spec in task.serve_fields():
            constraints = {}
            if spec.minimum is not None:
                constraints["ge"] = spec.minimum
            if spec.maximum is not None:
                constraints["le"] = spec.maximum
            if spec.min_length is not None:
                constraints["min_length"] = spec.min_length
            default = ... if spec.required else spec.default
            fields[spec.name] = (spec.type, Field(default, description=spec.description, **constraints))
        name = "".join(part.capitalize() for part in task.name.replace("-", " ").split()) + "Request"
        _MODELS[task.name] = create_model(name, __base__=RequestBody, __doc__=f"A request to a {task.name} model.",
                                          **fields)
    return _MODELS[task.name]
