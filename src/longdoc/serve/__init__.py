"""longdoc's HTTP service (`longdoc serve`; docs/serving.md): trained models behind FastAPI on uvicorn, one
endpoint per model, requests batched under a token budget.

    from longdoc.serve import ServeSettings, create_app, load_served_models
    app = create_app(load_served_models(["reviews=runs/reviews"]), ServeSettings(api_key="..."))

- `settings.ServeSettings`: the limits (batch tokens, queue, timeout, body and document size, API key);
- `models`: `ServedModel` (a model folder, its task and pipeline), `load_served_models`, `parse_model_specs`;
- `batching.TokenBudgetBatcher`: the queue and the worker thread that runs the batches;
- `app.create_app`: routes, errors, metrics (`metrics.ServeMetrics`), the web page;
- `server`: uvicorn in the foreground (`run_server`) or in a thread (`ServerThread`).

The names below import on first use: `import longdoc.serve` loads neither FastAPI nor torch.
"""

from __future__ import annotations

import importlib

_NAMES = {"ServeSettings": "settings", "ServedModel": "models", "load_served_models": "models",
          "parse_model_specs": "models", "TokenBudgetBatcher": "batching", "QueueFull": "batching",
          "create_app": "app", "ServerThread": "server", "run_server": "server"}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'longdoc.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
