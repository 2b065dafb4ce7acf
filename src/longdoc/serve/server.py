"""Running an app on uvicorn: in the foreground (`longdoc serve`, until Ctrl-C) or in a thread of this process
(tests, benchmarks, notebooks)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import uvicorn

from .app import mark_shutting_down


class Server(uvicorn.Server):
    """uvicorn's server that says where it listens once it does (`on_listening(url)`) and marks the app as
    shutting down (/ready: 503) as soon as it is asked to stop, before it drains the requests in flight."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[str], None] | None = None):
        super().__init__(config)
        self.on_listening = on_listening
        self.url: str | None = None

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            host = f"[{host}]" if ":" in host else host
            self.url = f"http://{host}:{port}"
            if self.on_listening is not None:
                self.on_listening(self.url)

    def handle_exit(self, sig, frame) -> None:
        mark_shutting_down(self.config.app)
        super().handle_exit(sig, frame)


def run_server(app, host: str = "127.0.0.1", port: int = 8000, on_listening=None, log_level: str = "info") -> bool:
    """Serve `app` until interrupted; False when the server could not start (the port taken...)."""
    server = Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30),
                    on_listening)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
        return False
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it held back once it has shut down cleanly
        pass
    return server.started


class ServerThread:
    """`with ServerThread(app) as server: httpx.get(server.url + "/health")`: the app on a free port of
    127.0.0.1 in a thread, stopped (gracefully, requests in flight answered) on leaving the block."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.server = Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="longdoc-serve", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see its log)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        mark_shutting_down(self.server.config.app)
        self.server.should_exit = True
        self.thread.join(timeout=30)
