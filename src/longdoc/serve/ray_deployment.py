"""`longdoc serve --ray`: the same HTTP app, in Ray Serve replicas spread over a Ray cluster.

Each replica loads the models itself (`load_served_models`) and builds the plain service's app
(`create_app`), with itself as the batcher: `submit` queues (model, request) pairs on a
`@serve.batch` method that fills a batch up to `max_batch_tokens` padded tokens and runs one
`predict_batch` per model and options in it. Ray Serve's proxies route HTTP requests to the
replicas; its autoscaler keeps between `replicas` and `max_replicas`. A replica takes one GPU
where the cluster has GPUs, else one CPU.

Two ways in: `run_ray(...)` (what `longdoc serve --ray` calls) and `app_builder`, the import path a
`serve run` / `serve deploy` config names (docs/serving-ray.md). Ray is imported on first use, so
this module imports without the `ray` extra.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

from longdoc.serve.settings import ServeSettings

APP_NAME = "longdoc"
REPLICA_HEADER = "X-Longdoc-Replica"      # the replica that answered (Ray's replica id)
BATCH_HEADER = "X-Longdoc-Batch-Size"     # how many requests shared the model call that answered this one
API_KEY_VARIABLE = "LONGDOC_API_KEY"   # as for `longdoc serve`: the key when settings give none
INSTALL_HINT = "longdoc serve --ray needs Ray Serve: pip install 'longdoc[ray]'"


@dataclass
class RayOptions:
    """How the app is spread over the cluster (the service's own settings are ServeSettings)."""

    replicas: int = 1                      # replicas at start; the autoscaler's floor
    max_replicas: int | None = None        # > replicas: autoscale up to this many
    target_ongoing_requests: float = 8.0   # per replica; the autoscaler adds replicas above it
    batch_wait_s: float = 0.01             # how long a batch waits to fill after its first request
    gpus_per_replica: float | None = None  # None: 1 where the cluster has GPUs, else 0
    cpus_per_replica: float = 1.0          # without a GPU: a replica's CPU share (Ray sets its threads to it)
    autoscaling: dict | None = None        # more of Serve's autoscaling_config (upscale_delay_s...)

    def check(self):
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas}): "
                             "give max_replicas >= replicas, or leave it out for a fixed number")
        if self.target_ongoing_requests <= 0 or self.batch_wait_s < 0:
            raise ValueError("target_ongoing_requests must be positive and batch_wait_s not negative")
        if self.gpus_per_replica is not None and self.gpus_per_replica < 0:
            raise ValueError(f"gpus_per_replica must not be negative, not {self.gpus_per_replica}")
        if self.cpus_per_replica <= 0:
            raise ValueError(f"cpus_per_replica must be positive, not {self.cpus_per_replica}")
        if self.autoscaling is not None and not isinstance(self.autoscaling, dict):
            raise ValueError(f"autoscaling must be a mapping of Serve's autoscaling_config fields, not "
                             f"{self.autoscaling!r}")
        return self


def _import_serve():
    try:
        from ray import serve
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    return serve


# -- the replica ------------------------------------------------------------------------------

# Set per HTTP request by ReplicaHeaders: a dict the batcher writes the batch size into. Inner
# middleware may run the endpoint in a copied context, which still holds the same dict.
_BATCH_NOTE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("longdoc_batch_note", default=None)


class ReplicaHeaders:
    """ASGI middleware: names the replica (and the batch size, where a model answered) in the headers."""

    def __init__(self, app, replica: str):
        self.app = app
        self.replica = replica

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        note = {}
        token = _BATCH_NOTE.set(note)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REPLICA_HEADER.lower().encode(), self.replica.encode()))
                if "batch_size" in note:
                    headers.append((BATCH_HEADER.lower().encode(), str(note["batch_size"]).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _BATCH_NOTE.reset(token)


def _note_batch_size(size: int):
    # module-level: the replica class (pickled by value) refers to it by name, not to the ContextVar
    note = _BATCH_NOTE.get()
    if note is not None:
        note["batch_size"] = size


def padded_tokens(items) -> int:
    """A batch's size for @serve.batch, as the plain batcher counts it: its longest document x its count."""
    return max(item[2] for item in items) * len(items)


class _TokenBudgetWarning(logging.Filter):
    """Drops Serve's warning that max_batch_size exceeds max_ongoing_requests: ours counts tokens."""

    def filter(self, record):
        return "is larger than `max_ongoing_requests`" not in record.getMessage()


def _deployment_class():
    """The replica deployment, defined here so that importing this module needs no Ray."""
    serve = _import_serve()

    @serve.ingress()  # the app is built in each replica, by __serve_build_asgi_app__
    class LongdocReplica:
        """One replica: the models, the app, and the batcher the app submits requests to (itself)."""

        metrics = None  # the app's ServeMetrics, bound by create_app

        def __init__(self, specs: list[str], settings: ServeSettings, batch_wait_s: float):
            from longdoc.serve.models import load_served_models

            if settings.api_key is None and os.environ.get(API_KEY_VARIABLE):
                # the key from the replica's environment, as `longdoc serve` reads it: not in the bound args
                settings = dataclasses.replace(settings, api_key=os.environ[API_KEY_VARIABLE])
            self.settings = settings
            self.models = load_served_models(specs, runtime=settings.runtime)
            self.replica = serve.get_replica_context().replica_id.unique_id
            self.held = 0  # requests queued or running here (the queue-depth gauge)
            logging.getLogger("ray.serve").addFilter(_TokenBudgetWarning())
            self.predict_items.set_max_batch_size(settings.max_batch_tokens)
            self.predict_items.set_batch_wait_timeout_s(batch_wait_s)

        def __serve_build_asgi_app__(self):
            from longdoc.serve.app import create_app

            app = create_app(self.models, self.settings, batcher=self)
            app.add_middleware(ReplicaHeaders, replica=self.replica)
            return app

        def bind_metrics(self, metrics) -> None:
            self.metrics = metrics

        async def submit(self, model, request: dict, tokens: int) -> dict:
            """The batcher interface of create_app (which counted `tokens`): the model's JSON for one request, or
            its exception."""
            # over the budget counts as the whole budget: it runs in a batch of its own, as in the plain batcher
            item = (model.name, request, min(tokens, self.settings.max_batch_tokens), model.batch_key(request))
            self._hold(+1)
            try:
                outcome, batch_size = await self.predict_items(item)
            finally:
                self._hold(-1)
            _note_batch_size(batch_size)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        def _hold(self, change: int) -> None:
            self.held += change
            if self.metrics is not None:
                self.metrics.queue_depth.set(self.held)

        @serve.batch(max_batch_size=16384, batch_wait_timeout_s=0.01, batch_size_fn=padded_tokens)
        async def predict_items(self, items: list[tuple]) -> list[tuple[object, int]]:
            """A batch of (model name, request, tokens, batch key) within the token budget: one forward
            pass per batch key (same model, same options), off the event loop. Each item's answer is
            (its JSON or its exception, the size of the forward pass it shared)."""
            from longdoc.serve.batching import predict_isolating

            groups: dict[tuple, list[int]] = {}
            for index, item in enumerate(items):
                groups.setdefault(item[3], []).append(index)
            answers: list = [None] * len(items)
            for indexes in groups.values():
                model = self.models[items[indexes[0]][0]]
                started = time.perf_counter()
                outcomes = await asyncio.to_thread(predict_isolating, model, [items[i][1] for i in indexes])
                if self.metrics is not None:
                    tokens = [items[i][2] for i in indexes]
                    self.metrics.observe_batch(model.name, len(indexes), max(tokens) * len(indexes), sum(tokens),
                                               time.perf_counter() - started)
                for i, outcome in zip(indexes, outcomes):
                    answers[i] = (outcome, len(indexes))
            return answers

    return serve.deployment(LongdocReplica, name="LongdocReplica")


# -- the application --------------------------------------------------------------------------


def _cluster_gpus() -> float:
    """GPUs in the Ray cluster this process is connected to; before it connects (`serve run` builds the
    app first), this machine's."""
    import ray

    if ray.is_initialized():
        return ray.cluster_resources().get("GPU", 0)
    import torch

    return torch.cuda.device_count()


def deployment_options(settings: ServeSettings, options: RayOptions) -> dict:
    """serve.deployment(...) options: replicas or autoscaling, and a replica's GPU or CPU."""
    options.check()
    gpus = options.gpus_per_replica
    if gpus is None:
        gpus = 1 if _cluster_gpus() >= 1 else 0
    actor = {"num_gpus": gpus, "num_cpus": 1} if gpus else {"num_cpus": options.cpus_per_replica}
    # a replica holds max_concurrent_requests; more wait in Ray's proxy (the autoscaler counts them), as many
    # again at most, then 429 with Retry-After, as the plain server answers when it is full
    chosen = {"ray_actor_options": actor, "max_ongoing_requests": settings.max_concurrent_requests,
              "max_queued_requests": settings.max_concurrent_requests,
              "backpressure_config": {"status_code": 429, "retry_after_s": 1}}
    if options.max_replicas is None or options.max_replicas == options.replicas:
        chosen["num_replicas"] = options.replicas
    else:
        chosen["autoscaling_config"] = {"min_replicas": options.replicas, "initial_replicas": options.replicas,
                                        "max_replicas": options.max_replicas,
                                        "target_ongoing_requests": options.target_ongoing_requests,
                                        **(options.autoscaling or {})}
    return chosen


def build_app(specs: list[str], settings: ServeSettings, options: RayOptions):
    """The Serve application: the replica deployment, bound to the model specs and settings."""
    if not specs:
        raise ValueError("no model to serve: give at least one model spec (NAME=DIR or DIR)")
    deployment = _deployment_class().options(**deployment_options(settings, options))
    return deployment.bind(list(specs), settings, options.batch_wait_s)


SETTING_FIELDS = {field.name: field.default for field in dataclasses.fields(ServeSettings)}
OPTION_FIELDS = {field.name: field.default for field in dataclasses.fields(RayOptions)}
NUMBERS_WITHOUT_DEFAULT = {"max_replicas", "gpus_per_replica", "max_document_tokens"}


def _arg_value(name: str, value, default):
    """`serve run module:app_builder key=value` passes strings: numbers are read back as numbers."""
    numeric = name in NUMBERS_WITHOUT_DEFAULT or (isinstance(default, (int, float)) and not isinstance(default, bool))
    if not numeric or not isinstance(value, str):
        return value
    try:
        return int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None


def app_builder(args: dict):
    """`serve run` / `serve deploy` entry point: import_path `longdoc.serve.ray_deployment:app_builder`,
    args {models: [specs...] (or one string, specs apart by commas), any RayOptions or ServeSettings field}."""
    args = dict(args)
    specs = args.pop("models", None)
    if isinstance(specs, str):
        specs = [spec.strip() for spec in specs.split(",") if spec.strip()]
    if not specs:
        raise ValueError("the application's args need `models`: a list of model specs (NAME=DIR or DIR)")
    known = {**SETTING_FIELDS, **OPTION_FIELDS}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ValueError(f"unknown args {unknown}; known: models, {', '.join(known)}")
    values = {name: _arg_value(name, value, known[name]) for name, value in args.items()}
    settings = ServeSettings(**{name: value for name, value in values.items() if name in SETTING_FIELDS})
    options = RayOptions(**{name: value for name, value in values.items() if name in OPTION_FIELDS})
    return build_app(specs, settings, options)


# -- running it -------------------------------------------------------------------------------


@dataclass
class RayService:
    """A running deployment: its URL, and how to take it down."""

    url: str
    ray_owner: str  # "here": a Ray instance this call started; "connected": a cluster it joined; "caller": the caller's

    def shutdown(self):
        """Take the app down; stop the Ray instance this call started, leave anyone else's running."""
        import ray

        serve = _import_serve()
        if self.ray_owner == "here":
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
        if self.ray_owner != "caller":
            ray.shutdown()  # stops the local instance, or disconnects this driver from the cluster


def run_ray(specs: list[str], settings: ServeSettings, replicas: int = 1, max_replicas: int | None = None,
            host: str = "127.0.0.1", port: int = 8000, address: str | None = None, blocking: bool = True,
            **options) -> RayService:
    """Deploy the app on Ray Serve: on the cluster at `address` ("auto": the one `ray start` runs on this
    machine), else on the Ray instance this process already runs, else on one started here. Blocking:
    serve until Ctrl-C, then take the app down (and the instance, if started here); else return the
    RayService. `options`: more RayOptions fields (target_ongoing_requests, batch_wait_s...)."""
    serve = _import_serve()
    import ray

    ray_options = RayOptions(replicas=replicas, max_replicas=max_replicas, **options).check()
    ray_owner = "caller"
    if not ray.is_initialized():
        ray_owner = "connected" if address is not None or os.environ.get("RAY_ADDRESS") else "here"
        if ray_owner == "here":
            _check_folders(specs)  # the replicas run on this machine: say so now, not after Ray has started
        # "local": a new instance, even where `ray start` runs one (that one is --ray-address auto)
        ray.init(address="local" if ray_owner == "here" else address)
    try:
        application = build_app(specs, settings, ray_options)
        if ray_owner == "here":
            _check_room(ray_options, application)
        serve.start(http_options={"host": host, "port": port})
        service = RayService(url=_serve_url(host, port), ray_owner=ray_owner)
        _deploy(serve, application)
    except BaseException:
        if ray_owner != "caller":
            ray.shutdown()
        raise
    if not blocking:
        return service
    print(f"longdoc on Ray Serve at {service.url} (API at {service.url}/docs); Ctrl-C stops it", file=sys.stderr,
          flush=True)
    try:
        _wait_for_stop()
    finally:
        service.shutdown()
    return service


def _stop(signum, frame):
    raise KeyboardInterrupt


def _wait_for_stop() -> None:
    """Until Ctrl-C, or SIGTERM (what a service manager stops with), as for the plain server."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_folders(specs: list[str]) -> None:
    from longdoc.errors import DataError
    from longdoc.serve.models import parse_model_specs

    for _, folder in parse_model_specs(specs):
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: no such model folder (give folders that `longdoc train` or `longdoc "
                            f"export` wrote)")


def _check_room(options: RayOptions, application) -> None:
    """A Ray instance started here has this machine's CPUs and GPUs: refuse replicas it cannot place
    (Serve would wait for them forever)."""
    import ray

    actor = application._bound_deployment.ray_actor_options
    have = ray.cluster_resources()
    for resource, per_replica in (("CPU", actor.get("num_cpus", 0)), ("GPU", actor.get("num_gpus", 0))):
        if per_replica and options.replicas * per_replica > have.get(resource, 0):
            raise ValueError(f"{options.replicas} replicas need {options.replicas * per_replica:g} {resource}s; "
                             f"this machine has {have.get(resource, 0):g}: give fewer replicas, or a cluster "
                             f"(--ray-address), or smaller ones ({resource.lower()}s_per_replica, from Python or a "
                             f"serve config)")


def _serve_url(host: str, port: int) -> str:
    """Where the proxies listen: Serve already running on a cluster keeps the host and port it started
    with (until `serve shutdown`), whatever this call asked for."""
    try:
        from ray.serve.context import _get_global_client

        config = _get_global_client().http_config
        actual_host, actual_port = config.host, config.port
    except Exception:  # noqa: BLE001 - a private API: then trust what was asked for
        return f"http://{host}:{port}"
    if (actual_host, actual_port) != (host, port):
        print(f"Ray Serve already runs on this cluster at {actual_host}:{actual_port} and keeps that address "
              f"until `serve shutdown`; the app is served there", file=sys.stderr, flush=True)
    return f"http://{actual_host}:{actual_port}"


def _deploy(serve, application) -> None:
    """serve.run, with the replicas' own error when they cannot start (Serve says only that they failed)."""
    try:
        serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    except RuntimeError as error:
        status = serve.status().applications.get(APP_NAME)
        messages = [deployment.message for deployment in status.deployments.values()] if status else []
        reasons = [line for message in messages for line in message.splitlines()[-1:] if line.strip()]
        if not reasons:
            raise
        raise ValueError(f"the replicas could not start: {reasons[-1]} (their log has the whole traceback)") \
            from error
