"""`longdoc train --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]`: the
command starts itself again as N processes through `torch.distributed.run` (torchrun) and returns
torchrun's exit status. A command already started by torchrun or `accelerate launch` (WORLD_SIZE set)
runs as it is. See docs/distributed.md.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# the command-line flags this module reads (argparse dest -> flag), left out of the relaunched command
LAUNCH_FLAGS = {"nproc_per_node": "--nproc-per-node", "nnodes": "--nnodes", "node_rank": "--node-rank",
                "master_addr": "--master-addr", "master_port": "--master-port"}
DEFAULT_MASTER_PORT = 29500  # torchrun's own default, the same on every node


@dataclass(frozen=True)
class LaunchSettings:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @classmethod
    def from_args(cls, args) -> "LaunchSettings":
        given = {name: getattr(args, name) for name in LAUNCH_FLAGS if getattr(args, name, None) is not None}
        return cls(**given)

    @property
    def wanted(self) -> bool:
        """More than one process asked for."""
        return self.nproc_per_node > 1 or self.nnodes > 1

    def check(self) -> None:
        if self.nproc_per_node < 1:
            raise ValueError(f"--nproc-per-node must be 1 or more (processes on this machine), got {self.nproc_per_node}")
        if self.nnodes < 1:
            raise ValueError(f"--nnodes must be 1 or more (machines in the run), got {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"--node-rank numbers this machine from 0 to --nnodes - 1 ({self.nnodes - 1}); got "
                             f"{self.node_rank}")
        if self.nnodes > 1 and not self.master_addr:
            raise ValueError(f"--nnodes {self.nnodes} needs --master-addr: the address of the machine started with "
                             f"--node-rank 0, the same on every machine (and --master-port, default "
                             f"{DEFAULT_MASTER_PORT})")


def already_launched() -> bool:
    """Started by torchrun, `accelerate launch` or another launcher that sets WORLD_SIZE."""
    return "WORLD_SIZE" in os.environ


def free_port() -> int:
    """A TCP port nobody listens on now (one machine: nothing else needs to know it in advance)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def without_launch_flags(argv: list[str]) -> list[str]:
    """`argv` less the launch flags and their values ("--nnodes 2" and "--nnodes=2")."""
    flags = set(LAUNCH_FLAGS.values())
    kept, skip_value = [], False
    for token in argv:
        if skip_value:
            skip_value = False
        elif token in flags:
            skip_value = True
        elif token.split("=", 1)[0] not in flags:
            kept.append(token)
    return kept


def torchrun_command(settings: LaunchSettings, argv: list[str]) -> list[str]:
    """The torchrun command line that runs `longdoc <argv>` (the launch flags left out) on this node."""
    if settings.nnodes == 1:
        address, port = settings.master_addr or "127.0.0.1", settings.master_port or free_port()
    else:
        address, port = settings.master_addr, settings.master_port or DEFAULT_MASTER_PORT
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={settings.nproc_per_node}",
            f"--nnodes={settings.nnodes}", f"--node-rank={settings.node_rank}", f"--master-addr={address}",
            f"--master-port={port}", "-m", "longdoc.cli", *without_launch_flags(argv)]


def check_devices(settings: LaunchSettings) -> None:
    """On GPUs, one process per GPU (NCCL refuses two processes on one device)."""
    import torch

    if torch.cuda.is_available() and settings.nproc_per_node > torch.cuda.device_count():
        raise ValueError(f"--nproc-per-node {settings.nproc_per_node}, but this machine shows "
                         f"{torch.cuda.device_count()} GPU(s): give at most one process per GPU "
                         f"(CUDA_VISIBLE_DEVICES chooses which)")


def thread_environment(settings: LaunchSettings) -> dict:
    """The environment of the processes: the CPU cores shared out between them unless OMP_NUM_THREADS is
    set (torchrun would give each process one thread, accelerate a share of the physical cores)."""
    environment = dict(os.environ)
    if "OMP_NUM_THREADS" not in environment:
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.nproc_per_node))
    return environment


def relaunch_if_asked(args, argv: list[str]) -> int | None:
    """Run the command `longdoc <argv>` as the processes `args` ask for (--nproc-per-node...) and return
    torchrun's exit status; None when this process should run the command itself (one process asked
    for, or a launcher started it)."""
    settings = LaunchSettings.from_args(args)
    settings.check()
    if already_launched() or not settings.wanted:
        return None
    check_devices(settings)
    command = torchrun_command(settings, argv)
    logger.info("starting %d processes on this machine%s: %s", settings.nproc_per_node,
                f" (node {settings.node_rank} of {settings.nnodes})" if settings.nnodes > 1 else "", " ".join(command))
    try:
        return subprocess.run(command, env=thread_environment(settings)).returncode
    except KeyboardInterrupt:  # torchrun passes Ctrl-C to the processes; their saved model stays intact
        return 130
