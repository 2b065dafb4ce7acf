"""The client side of a peer that runs in its own virtualenv (lsg-converter, transformers 4.57): one worker
process started with that venv's python on a peer script, one JSON request per line on its stdin, one
reply per request on its stdout behind the script's tag. Standard library only: the peer scripts import
it inside their own virtualenvs too."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path


class WorkerError(RuntimeError):
    pass


class PeerProcess:
    """`script` run by `python` with the `load` request answered; `info` is the load reply. `peer` names
    it in errors, `tag` marks its replies, `hint` says how to get the missing python. A context manager:
    closes on exit."""

    def __init__(self, python: Path, script: str | Path, load: dict, peer: str, tag: str, hint: str):
        if not Path(python).exists():
            raise WorkerError(f"no {peer} python at {python} ({hint})")
        self.argv = [str(python), str(Path(script).resolve())]
        self.load, self.peer, self.tag = load, peer, tag
        self.start()

    def start(self) -> None:
        """Starts the worker and loads the checkpoint (again, after `close` or a crash)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(self.argv, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, env=env)
        self.info = self.request(**self.load)
        if self.info["missing_keys"]:
            self.close()
            raise WorkerError(f"{self.peer} did not find these weights in our checkpoint (it would run on random "
                              f"ones): {self.info['missing_keys']}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, **request) -> dict:
        """Sends one request and returns its reply; WorkerError if the worker failed or exited."""
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            for line in self.process.stdout:
                if line.startswith(self.tag):
                    reply = json.loads(line[len(self.tag):])
                    if "error" in reply:
                        raise WorkerError(f"{self.peer} worker failed on {request.get('op')}:\n{reply['error']}")
                    return reply
        except BrokenPipeError:
            pass
        self.process.wait()
        self.stderr.seek(0)
        raise WorkerError(f"{self.peer} worker exited ({self.process.returncode}) during {request.get('op')} "
                          f"{request.get('case', '')}: {self.stderr.read()[-3000:]}")

    def close(self) -> None:
        if self.alive():
            try:
                self.request(op="quit")
            except WorkerError:
                pass
            self.process.wait(timeout=60)
        self.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
