"""`longdoc serve MODEL_DIR...`: the models over HTTP (longdoc.serve; docs/serving.md). Building the parser
imports neither FastAPI nor torch."""

from __future__ import annotations

import os

from .tasks import ConsoleOutput

API_KEY_VARIABLE = "LONGDOC_API_KEY"


def add_serve_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve models over HTTP (FastAPI on uvicorn): one endpoint per model",
        description="Serve each MODEL_DIR at POST /v1/models/NAME/ACTION (classify, answer or summarize, by the "
        "model's task); NAME is the folder's name unless given as NAME=DIR. Requests that arrive together are "
        "batched under a token budget. GET /v1/models lists the models, /docs the API, /metrics the Prometheus "
        "metrics, / the web page. See docs/serving.md.")
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="model folders, each DIR or NAME=DIR")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: "
                        "every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    parser.add_argument("--max-batch-tokens", type=int, default=16384, metavar="N",
                        help="padded tokens per forward pass: a batch's longest document x its count (default 16384)")
    parser.add_argument("--max-concurrent-requests", type=int, default=64, metavar="N",
                        help="requests queued or running; more are answered 429 with Retry-After (default 64)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S",
                        help="seconds a request may take; then 504 (default 60)")
    parser.add_argument("--api-key", metavar="KEY", help=f"require `Authorization: Bearer KEY` or `X-API-Key: KEY` "
                        f"on /v1/ (default: ${API_KEY_VARIABLE} if set, else no key)")
    parser.add_argument("--max-document-tokens", type=int, metavar="N",
                        help="refuse (413) documents of more tokens (default: only the models' own limits)")
    parser.add_argument("--max-body-bytes", type=int, default=10_000_000, metavar="N",
                        help="refuse (413) larger request bodies (default 10000000)")
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                        help="torch (default), or onnx: folders that `longdoc export --format onnx` wrote")
    ray = parser.add_argument_group("Ray Serve (docs/serving-ray.md)")
    ray.add_argument("--ray", action="store_true", help="serve in Ray Serve replicas (a GPU each where there are "
                     "GPUs), on a Ray instance started here or on --ray-address's cluster")
    ray.add_argument("--replicas", type=int, metavar="N", help="with --ray: replicas at start, and the fewest kept "
                     "(default 1)")
    ray.add_argument("--max-replicas", type=int, metavar="N", help="with --ray: autoscale up to N replicas")
    ray.add_argument("--ray-address", metavar="ADDRESS", help="with --ray: the cluster (HEAD_IP:6379, or auto: the "
                     "one `ray start` runs on this machine)")
    parser.set_defaults(run=run_serve)


def run_serve(args) -> int:
    try:
        from ..serve.app import create_app
        from ..serve.server import run_server
    except ImportError as error:
        raise ValueError(f"the service needs the serve extra ({error.name} is missing): pip install "
                         f"'longdoc[serve]'") from None
    from ..serve.models import load_served_models
    from ..serve.settings import ServeSettings

    out = ConsoleOutput()
    settings = ServeSettings(max_batch_tokens=args.max_batch_tokens,
                             max_concurrent_requests=args.max_concurrent_requests, timeout=args.timeout,
                             api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None,
                             max_document_tokens=args.max_document_tokens, max_body_bytes=args.max_body_bytes,
                             runtime=args.runtime)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: give a port from 0 to 65535")
    if args.ray:
        return run_on_ray(args, settings)
    for flag in ("replicas", "max_replicas", "ray_address"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} goes with --ray")
    models = load_served_models(args.models, runtime=settings.runtime)
    for model in models.values():
        out.note(f"{model.name}: {model.task.name} model from {model.model_dir} at POST {model.endpoint}")
    app = create_app(models, settings)

    def listening(url: str) -> None:
        out.print(f"longdoc serve: listening on {url} (API at {url}/docs, web page at {url}/)")

    if not run_server(app, args.host, args.port, on_listening=listening):
        out.note(f"longdoc serve: could not listen on {args.host}:{args.port} (see above)")
        return 1
    return 0


def run_on_ray(args, settings) -> int:
    from ..serve.ray_deployment import run_ray

    if args.port == 0:
        raise ValueError("--port 0 does not work with --ray (every node's proxy listens on the same port): give one")
    try:
        run_ray(args.models, settings, replicas=1 if args.replicas is None else args.replicas,
                max_replicas=args.max_replicas, host=args.host, port=args.port, address=args.ray_address)
    except ImportError as error:
        raise ValueError(str(error)) from None
    return 0
