"""Shared helpers of the Redis store and device-cache tests: fail-fast clients and private redis-servers."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import free_port


def fast_client(port: int) -> redis.Redis:
    """A client that fails at once when nothing listens (no retries, short timeouts)."""
    return redis.Redis(
        host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=1
    )


@pytest.fixture
def redis_server():
    """A private ``redis-server`` on a free port (no persistence); killed by pid at teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = fast_client(port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"redis-server on port {port} did not start")
            time.sleep(0.05)
    yield process, client
    client.close()
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


class redis_server_on:  # noqa: N801 - used like a function
    """Context manager: a fresh ``redis-server`` on ``port`` (after the previous one died), killed on exit."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> redis.Redis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = fast_client(self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self.client
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.__exit__()
                    pytest.fail(f"redis-server did not restart on port {self.port}")
                time.sleep(0.05)

    def __exit__(self, *exc_info) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
