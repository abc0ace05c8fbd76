"""The benchmarks' reading of the broker's and Redis's CPU time (``bench/server_cpu.py``)."""

from __future__ import annotations

import os
import socket

import pytest

from alarmflow.services import RedisServer, free_port
from bench.server_cpu import ServerCpu, listening_pid, process_cpu_s


def test_the_process_listening_on_a_port_is_found_by_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert listening_pid(port) == os.getpid()
    assert listening_pid(port) is None


def test_a_process_cpu_time_grows_as_it_works() -> None:
    before = process_cpu_s(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert process_cpu_s(os.getpid()) > before


@pytest.mark.integration
def test_redis_cpu_time_grows_with_the_work_asked_of_it(redis_server: RedisServer) -> None:
    url = redis_server.url(9)
    servers = ServerCpu.of(f"127.0.0.1:{free_port()},127.0.0.1:1", url)
    assert servers.broker_pid is None
    _, before = servers.read()
    servers.redis_client.eval("local n = 0 for i = 1, 20000000 do n = n + i end return n", 0)
    broker, after = servers.read()
    assert broker == 0.0
    assert after > before
    redis_pid = servers.redis_client.info("server")["process_id"]
    assert ServerCpu.of(f"127.0.0.1:{redis_server.port}", url).broker_pid == redis_pid
