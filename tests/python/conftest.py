"""Starts real `cauce server` processes for the kafka-python tests."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cauce_binary() -> str:
    binary = os.environ.get("CAUCE_BIN", str(REPO / "target" / "debug" / "cauce"))
    if not Path(binary).exists():
        raise RuntimeError(f"{binary} is missing: run cargo build first")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A cauce server on a free loopback port with its own data directory."""

    def __init__(self, config: str = ""):
        self.root = Path(tempfile.mkdtemp(prefix="cauce-py-"))
        self.port = free_port()
        self.config = config
        self.process = None
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        config_path = self.root / "cauce.toml"
        config_path.write_text(self.config)
        self.process = subprocess.Popen(
            [cauce_binary(), "server", "--config", str(config_path), "--data-dir", str(self.root / "data"),
             "--listen", self.bootstrap],
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def watch(stream):
            for line in stream:
                if line.startswith("cauce listening on"):
                    ready.set()

        threading.Thread(target=watch, args=(self.process.stdout,), daemon=True).start()
        if not ready.wait(20):
            self.process.kill()
            raise RuntimeError("cauce did not start within 20 s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill9(self):
        self.process.kill()
        self.process.wait()

    def close(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def broker():
    running = Broker()
    yield running
    running.close()


def wait_for(condition, timeout=20.0, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError("condition not met in time")
