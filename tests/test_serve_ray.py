"""longdoc serve --ray (serve/ray_deployment.py): on a local Ray instance the autoscaler takes the plain
service's app from one Ray Serve replica to two under load; both answer as the plain server does, and
@serve.batch puts requests that arrive together into one forward pass. Then the deployment's options
(replicas, autoscaling, GPUs), the documented `serve run` config and the command's flags."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asyncio
import math
import socket
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from longdoc.cli import main
from longdoc.serve import ray_deployment
from longdoc.serve.app import create_app
from longdoc.serve.models import load_served_models
from longdoc.serve.ray_deployment import APP_NAME, BATCH_HEADER, REPLICA_HEADER, RayOptions, app_builder, run_ray
from longdoc.serve.settings import ServeSettings

from serve_tiny_models import build_models, documents

DOCS = Path(__file__).resolve().parents[1] / "docs"
# room for the 34 requests sent at once: past 32, Ray's router may drop some (429) while it learns the replicas' load
SETTINGS = ServeSettings(max_batch_tokens=4096, max_concurrent_requests=64)


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folders = build_models(tmp_path_factory.mktemp("served"))
    return [f"reviews={folders['classifier']}", f"reader={folders['qa']}"]


def requests_to_send() -> list[tuple[str, dict]]:
    """(path, body): classification with and without explanations (two batch keys), QA, and refusals."""
    texts = documents(10, seed=3)
    sent = [("/v1/models/reviews/classify", {"text": text}) for text in texts[:8]]
    sent += [("/v1/models/reviews/classify", {"text": text, "explain": True, "top_segments": 1}) for text in texts[8:]]
    sent += [("/v1/models/reader/answer", {"question": "w8 w9 ?", "text": text}) for text in texts[:4]]
    sent += [("/v1/models/nobody/classify", {"text": "w10"}), ("/v1/models/reviews/classify", {"text": ""}),
             ("/v1/models/reviews/classify", {"text": "w10", "colour": "red"})]
    return sent


@pytest.fixture(scope="module")
def plain_answers(specs):
    """What the plain server answers to each request, one at a time."""
    with TestClient(create_app(load_served_models(specs), SETTINGS)) as client:
        return [(response.status_code, response.json()) for response in
                (client.post(path, json=body) for path, body in requests_to_send())]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Serve's replicas and proxies report their load every 10 s; the autoscaler below hears it every 0.5 s
FAST_METRICS = {"RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
                "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5"}


def running_replicas() -> int:
    from ray import serve

    return serve.status().applications[APP_NAME].deployments["LongdocReplica"].replica_states.get("RUNNING", 0)


@pytest.fixture(scope="module")
def ray_service(specs):
    """A local Ray instance this fixture starts (2 CPUs: one per replica) and stops, serving one replica
    that may autoscale to two; the fixture loads it until it has (`scaling`: what it saw)."""
    import ray
    from ray import serve

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # a local instance on 127.0.0.1: no token written to ~/.ray
        for name, value in FAST_METRICS.items():
            patch.setenv(name, value)  # read by Ray's processes, which inherit this environment
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                 log_to_driver=False)  # "local": a new instance, whatever else runs Ray on this machine
        try:
            # a long batch wait: requests sent together certainly meet in a batch, and they last, so that the
            # autoscaler sees more than target_ongoing_requests=1 in flight
            service = run_ray(specs, SETTINGS, replicas=1, max_replicas=2, port=free_port(), blocking=False,
                              batch_wait_s=0.3, target_ongoing_requests=1,
                              autoscaling={"upscale_delay_s": 0, "look_back_period_s": 2})
            assert service.ray_owner == "caller"
            service.scaling = {"at_start": running_replicas()}
            service.scaling["seconds"] = load_until_two_replicas(service.url)
            service.scaling["after_load"] = running_replicas()
            yield service
            service.shutdown()
        finally:
            serve.shutdown()
            ray.shutdown()


def load_until_two_replicas(url: str, most_seconds: float = 60) -> float:
    """Rounds of 8 requests at once until Serve runs two replicas (or `most_seconds` pass): the seconds it took."""
    started = time.monotonic()
    sent = [("/v1/models/reviews/classify", {"text": text}) for text in documents(8, seed=5)]
    while running_replicas() < 2 and time.monotonic() - started < most_seconds:
        asyncio.run(send_together(url, sent))
    return time.monotonic() - started


async def send_together(url: str, sent: list[tuple[str, dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, json=body) for path, body in sent))


def same_json(left, right, tolerance=1e-4) -> bool:
    """Equal JSON, floats within `tolerance` (a document padded in a batch moves scores in the last digits)."""
    if isinstance(left, float) or isinstance(right, float):
        return isinstance(left, (int, float)) and isinstance(right, (int, float)) and math.isclose(
            left, right, abs_tol=tolerance)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k], tolerance) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b, tolerance) for a, b in zip(left, right))
    return left == right


def test_the_autoscaler_adds_a_replica_under_load(ray_service):
    assert ray_service.scaling["at_start"] == 1
    assert ray_service.scaling["after_load"] == 2, ray_service.scaling


def test_two_replicas_answer_as_the_plain_server_in_batches(ray_service, plain_answers):
    sent = requests_to_send()
    responses = asyncio.run(send_together(ray_service.url, sent + sent))  # each request twice, all at once
    for (path, body), response, (status, answer) in zip(sent + sent, responses, plain_answers + plain_answers):
        assert response.status_code == status, (path, body, response.text)
        assert same_json(response.json(), answer), (path, body, response.json(), answer)
    replicas = {response.headers[REPLICA_HEADER] for response in responses}
    assert len(replicas) == 2, replicas
    # the size of the forward pass each answer came from: several classifications shared one
    sizes = [int(r.headers[BATCH_HEADER]) for r in responses if BATCH_HEADER in r.headers]
    assert len(sizes) == 2 * 14 and max(sizes) > 1, sizes
    listed = httpx.get(f"{ray_service.url}/v1/models").json()["models"]
    assert [model["name"] for model in listed] == ["reviews", "reader"]


def test_the_replicas_count_their_batches_in_their_metrics(ray_service):
    """/metrics is a replica's own: its batches (requests per forward pass) are there."""
    text = httpx.get(f"{ray_service.url}/metrics").text
    counts = [line for line in text.splitlines() if line.startswith('longdoc_batch_size_count{model="reviews"}')]
    assert counts and float(counts[0].split()[-1]) >= 1, text[:2000]


# -- the deployment's options, without a cluster -----------------------------------------------------------


def deployment_of(application):
    return application._bound_deployment


def test_fixed_replicas_or_autoscaling_and_a_gpu_per_replica_where_there_are_gpus(monkeypatch):
    monkeypatch.setattr(ray_deployment, "_cluster_gpus", lambda: 0)
    fixed = deployment_of(ray_deployment.build_app(["m=/x"], SETTINGS, RayOptions(replicas=3)))
    assert fixed.num_replicas == 3 and fixed._deployment_config.autoscaling_config is None
    assert fixed.ray_actor_options["num_cpus"] == 1 and not fixed.ray_actor_options.get("num_gpus")
    assert fixed.max_ongoing_requests == SETTINGS.max_concurrent_requests

    monkeypatch.setattr(ray_deployment, "_cluster_gpus", lambda: 4)
    scaled = deployment_of(ray_deployment.build_app(["m=/x"], SETTINGS, RayOptions(
        replicas=1, max_replicas=4, autoscaling={"downscale_delay_s": 60})))
    autoscaling = scaled._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas, autoscaling.target_ongoing_requests) == (1, 4, 8)
    assert autoscaling.downscale_delay_s == 60 and autoscaling.upscale_delay_s == 30  # given; Serve's default
    assert scaled.ray_actor_options["num_gpus"] == 1

    pinned = deployment_of(ray_deployment.build_app(["m=/x"], SETTINGS, RayOptions(gpus_per_replica=0.5)))
    assert pinned.ray_actor_options["num_gpus"] == 0.5


def test_a_ray_instance_started_here_refuses_replicas_it_has_no_room_for(monkeypatch):
    import ray

    monkeypatch.setattr(ray_deployment, "_cluster_gpus", lambda: 0)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    for replicas in (2, 3):
        options = RayOptions(replicas=replicas)
        application = ray_deployment.build_app(["m=/x"], SETTINGS, options)
        if replicas == 2:
            ray_deployment._check_room(options, application)  # one CPU each: room for two
        else:
            with pytest.raises(ValueError, match="3 replicas need 3 CPUs; this machine has 2: give fewer replicas"):
                ray_deployment._check_room(options, application)


@pytest.mark.parametrize("options, message", [
    (dict(replicas=0), "replicas must be at least 1"),
    (dict(replicas=3, max_replicas=2), "max_replicas (2) is below replicas (3)"),
    (dict(cpus_per_replica=0), "cpus_per_replica must be positive"),
    (dict(autoscaling=5), "autoscaling must be a mapping"),
])
def test_bad_options_are_refused_before_ray_starts(options, message):
    with pytest.raises(ValueError) as error:
        run_ray(["m=/x"], SETTINGS, **options, blocking=False)
    assert message in str(error.value)


def test_the_documented_serve_run_config_builds_the_app(monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    monkeypatch.setattr(ray_deployment, "_cluster_gpus", lambda: 0)
    config = yaml.safe_load((DOCS / "serving-ray.yaml").read_text())
    ServeDeploySchema.model_validate(config)  # Ray's own check of the file
    application, = config["applications"]
    assert application["import_path"] == "longdoc.serve.ray_deployment:app_builder"
    deployment = deployment_of(app_builder(application["args"]))
    specs, settings, _ = deployment.init_args
    assert specs == application["args"]["models"] and settings.max_batch_tokens == 16384
    autoscaling = deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (2, 8)


def test_serve_run_command_line_args_are_strings():
    """`serve run longdoc.serve.ray_deployment:app_builder models=a=/x,b=/y replicas=2 timeout=30`."""
    deployment = deployment_of(app_builder({"models": "a=/x,b=/y", "replicas": "2", "timeout": "30",
                                            "gpus_per_replica": "0"}))
    specs, settings, _ = deployment.init_args
    assert specs == ["a=/x", "b=/y"] and settings.timeout == 30.0 and deployment.num_replicas == 2
    with pytest.raises(ValueError, match=r"unknown args \['replica'\]"):
        app_builder({"models": ["a=/x"], "replica": 2})
    with pytest.raises(ValueError, match="replicas must be a number, not 'two'"):
        app_builder({"models": ["a=/x"], "replicas": "two"})
    with pytest.raises(ValueError, match="need `models`"):
        app_builder({"replicas": 2})


def test_a_replica_that_cannot_start_says_why(ray_service, tmp_path):
    """Serve reports only that the deployment failed: run_ray names the replica's own error. (The file's last
    Ray test: the failed app takes the served one's name.)"""
    with pytest.raises(ValueError, match=r"could not start: .*DataError: .*nowhere: no such model folder"):
        run_ray([f"lost={tmp_path / 'nowhere'}"], SETTINGS, port=free_port(), blocking=False)


def test_longdoc_serve_ray_flags(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(ray_deployment, "run_ray", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert main(["serve", "a=/x", "b=/y", "--ray", "--replicas", "2", "--max-replicas", "4", "--ray-address", "auto",
                 "--host", "0.0.0.0", "--port", "8123", "--max-batch-tokens", "512"]) == 0
    (specs, settings), options = calls[0]
    assert specs == ["a=/x", "b=/y"] and settings.max_batch_tokens == 512
    assert options == dict(replicas=2, max_replicas=4, host="0.0.0.0", port=8123, address="auto")
    for arguments, message in ((["--replicas", "2"], "--replicas goes with --ray"),
                               (["--ray", "--port", "0"], "--port 0 does not work with --ray")):
        assert main(["serve", "a=/x", *arguments]) == 1
        assert message in capsys.readouterr().err
    assert len(calls) == 1
