"""Training as several processes (DDP on the CPU with gloo): two processes of batch B reach the weights
of one process of batch 2B, write the output folder once and log once; a family with unused
parameters trains under gradient checkpointing from `longdoc train --nproc-per-node 2`; ranks that read
different data stop with an error naming them; the launcher's command line."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from safetensors.torch import load_file

from longdoc.training import distributed
from longdoc.training.launch import LaunchSettings, relaunch_if_asked, torchrun_command, without_launch_flags

from tiny_checkpoints import tiny_bert, write_documents

WORKER = str(Path(__file__).with_name("distributed_worker.py"))


def run(command: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    environment.pop("WORLD_SIZE", None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


def torchrun(*arguments: str) -> list[str]:
    with socket.socket() as probe:  # a free port: tests may run beside other distributed jobs
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}", *arguments]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("encoder") / "bert", max_positions=64)


def test_two_processes_reach_the_weights_of_one_with_twice_the_batch(encoder, tmp_path):
    # 8 documents: one step per epoch covers them all (1 x 8, or 2 x 4), so the order cannot matter;
    # dev is the training set, so that its loss falls every epoch and the last epoch is the one saved
    documents = write_documents(tmp_path / "train.jsonl", 8, seed=1)
    outputs = {}
    for processes, batch in ((1, 8), (2, 4)):
        out = tmp_path / f"{processes}-processes" / "model"
        arguments = [WORKER, "train", str(encoder), str(documents), str(documents), str(out),
                     str(tmp_path / f"cache-{processes}"), str(batch), "5"]
        done = run(torchrun(*arguments) if processes == 2 else [sys.executable, *arguments])
        outputs[processes] = out, json.loads(Path(f"{out}.result.json").read_text()), done.stderr
    (one, one_result, _), (two, two_result, two_log) = outputs[1], outputs[2]

    assert one_result["best_epoch"] == two_result["best_epoch"] == 5
    for a, b in zip(one_result["history"], two_result["history"]):  # the losses, step by step
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    one_weights, two_weights = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert one_weights.keys() == two_weights.keys()
    for name, tensor in one_weights.items():
        assert (tensor - two_weights[name]).abs().max().item() < 1e-5, name

    # written once, by rank 0: the model files, one report, nothing left beside them; its lines logged once
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in two.parent.iterdir()) == ["model", "model.result.json"]
    assert two_log.count("epoch 5: dev macro-F1") == 1 and two_log.count("linear probe on") == 1
    # rank 1 read the cache rank 0 filled, and shows no bars
    assert two_log.count("encoding training segments: 100%") == 1 and two_log.count("Loading weights: 100%") <= 2


def test_fine_tuning_with_unused_parameters_under_checkpointing_from_the_command_line(encoder, tmp_path):
    """The segment classifier's probe weights take no part in the loss (DDP without find_unused_parameters
    stops at the second step), and fine-tuning checkpoints activations; both stages run: the head warm-up
    on the cache rank 0 fills, then fine-tuning from the best warmed-up head, which every rank reloads
    from the output folder once rank 0 has written it."""
    train = write_documents(tmp_path / "train.jsonl", 8, seed=2)
    dev = write_documents(tmp_path / "dev.jsonl", 4, seed=3)
    out = tmp_path / "segment"
    done = run([sys.executable, "-m", "longdoc.cli", "train", "--nproc-per-node", "2", "--family", "segment",
                "--chunk-size", "14", "--model", str(encoder), "--train", str(train), "--validation", str(dev),
                "--output", str(out), "--epochs", "2", "--batch-size", "2", "--cache-dir", str(tmp_path / "cache")])
    assert "starting 2 processes" in done.stderr
    assert "--nproc-per-node" not in done.stderr.split("-m longdoc.cli")[1].splitlines()[0]  # not passed on
    assert (out / "model.safetensors").is_file() and (out / "training_report.json").is_file()
    assert done.stdout.count("saved the best model") == 1  # one summary, from rank 0
    assert done.stderr.count("head warm-up epoch 1:") == 1 and done.stderr.count("fine-tuning epoch 2:") == 1


def test_ranks_that_read_different_data_are_told_which(tmp_path):
    done = run(torchrun(WORKER, "disagree"))
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == 2, done.stdout  # both ranks stop, neither waits for the other
    for line in lines:
        assert "did not read the same data: training data: rank 0 (on " in line and " / rank 1 (on " in line
        assert "dev data" not in line and "settings" not in line.split(". Every")[0]
        assert "same command on identical files" in line


def test_disagreements_name_ranks_and_hosts():
    same = distributed.data_fingerprints(["a"], ["b"], {"epochs": 1, "cache_dir": "/here"})
    moved = distributed.data_fingerprints(["a"], ["b"], {"epochs": 1, "cache_dir": "/there"})
    other = distributed.data_fingerprints(["a"], ["b"], {"epochs": 2})
    assert same == moved  # a cache folder may differ between machines, also among the task's options
    assert (distributed.data_fingerprints([], [], {"options": {"cache_dir": "/here"}})
            == distributed.data_fingerprints([], [], {"options": {"cache_dir": "/there"}}))
    reports = [{"host": h, "fingerprints": f} for h, f in (("n1", same), ("n1", moved), ("n2", other))]
    assert distributed.disagreements(reports) == ["settings: ranks 0, 1 (on n1) / rank 2 (on n2) each read their own"]
    assert distributed.disagreements(reports[:2]) == []


def test_fingerprints_ignore_where_a_document_was_read():
    from longdoc.data.documents import Document

    here, there = Document("text", ("a",), "/node1/train.jsonl:1"), Document("text", ("a",), "/node2/train.jsonl:1")
    assert distributed.fingerprint([here]) == distributed.fingerprint([there])
    assert distributed.fingerprint([here]) != distributed.fingerprint([Document("text", ("b",), "x:1")])


def test_launch_command_line():
    argv = ["train", "--model", "m", "--nproc-per-node", "2", "--nnodes=2", "--node-rank", "1", "--master-addr",
            "10.0.0.1", "--epochs", "3"]
    assert without_launch_flags(argv) == ["train", "--model", "m", "--epochs", "3"]
    settings = LaunchSettings(nproc_per_node=2, nnodes=2, node_rank=1, master_addr="10.0.0.1")
    command = torchrun_command(settings, argv)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--master-port=29500" in command
    assert command[-7:] == ["-m", "longdoc.cli", "train", "--model", "m", "--epochs", "3"]
    single = torchrun_command(LaunchSettings(nproc_per_node=2), ["train"])
    assert "--master-addr=127.0.0.1" in single and "--nnodes=1" in single


@pytest.mark.parametrize("settings, message", [
    (dict(nproc_per_node=0), "--nproc-per-node must be 1 or more"),
    (dict(nnodes=2, node_rank=2, master_addr="h"), "--node-rank numbers this machine from 0 to"),
    (dict(nnodes=2), "needs --master-addr"),
])
def test_launch_settings_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        LaunchSettings(**settings).check()


def test_a_launched_process_runs_the_command_itself(monkeypatch):
    args = Namespace(nproc_per_node=2, nnodes=None, node_rank=None, master_addr=None, master_port=None)
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun or accelerate launch started it
    assert relaunch_if_asked(args, ["train"]) is None
    monkeypatch.delenv("WORLD_SIZE")
    assert relaunch_if_asked(Namespace(nproc_per_node=1), ["train"]) is None


def test_launch_flags_belong_to_train():
    from longdoc.cli.tasks import training_call

    with pytest.raises(ValueError, match="longdoc cv does not take --nproc-per-node: its trainings run one after"):
        training_call(Namespace(command="cv", nproc_per_node=2), out=None)


@pytest.mark.slow
def test_two_machines_simulated_on_one(encoder, tmp_path):
    """--nnodes 2: two `longdoc train` commands (node ranks 0 and 1, one process each) meet at
    --master-addr/--master-port and train one model, written once by node 0."""
    train = write_documents(tmp_path / "train.jsonl", 8, seed=4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "longdoc.cli", "train", "--family", "segment", "--freeze-encoder", "--chunk-size", "14",
         "--model", str(encoder), "--train", str(train), "--validation", str(train), "--output", str(tmp_path / "m"),
         "--epochs", "2", "--batch-size", "4", "--cache-dir", str(tmp_path / f"cache-{rank}"),  # a cache per machine
         "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1",
         "--master-port", port], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for rank in (0, 1)]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    assert "saved the best model" in outputs[0][0] and "saved the best model" not in outputs[1][0]
    assert "epoch 2:" in outputs[0][1] and "epoch 2:" not in outputs[1][1]
    assert (tmp_path / "m" / "model.safetensors").is_file()
