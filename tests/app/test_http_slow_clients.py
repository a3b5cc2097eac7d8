"""Clients that hold connections without finishing a request, over real loopback sockets: a body
that trickles gets 408 and a closed connection, headers that trickle (or never come) lose the
connection, and a connection beyond TRM_MAX_CONNECTIONS gets 503 + Retry-After."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from in_thread import RunningServer

StartServer = Callable[..., tuple[RunningServer, httpx.Client]]
CLIENTS = 100  # slow clients per test; each holds a socket on both ends


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(running: RunningServer, opened: list[socket.socket]) -> socket.socket:
    host, port = running.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    opened.append(sock)
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it is still open at
    `deadline` (time.monotonic())."""
    received = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def status_and_headers(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


def test_bodies_that_trickle_get_408_and_lose_their_connection(
        start_server: StartServer, sockets: list[socket.socket]) -> None:
    running, _ = start_server(request_body_timeout_s=0.5)
    head = (b"POST /v1/solve/sudoku HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"puzzle\": \"5")
    started = time.monotonic()
    for _ in range(CLIENTS):
        connect(running, sockets).sendall(head)
    for sock in sockets:
        status, headers, body = status_and_headers(read_until_closed(sock, started + 10))
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["type"].endswith("request-timeout")
    assert time.monotonic() - started < 10


def test_headers_that_trickle_or_never_come_lose_their_connection(
        start_server: StartServer, sockets: list[socket.socket]) -> None:
    running, http = start_server(request_header_timeout_s=0.5)
    started = time.monotonic()
    for i in range(CLIENTS):
        sock = connect(running, sockets)
        if i % 2:  # half send part of a request line and headers, half send nothing
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    for sock in sockets:
        assert read_until_closed(sock, started + 10) == b""
    assert time.monotonic() - started < 10
    assert http.get("/livez").status_code == 200  # prompt clients are unaffected


def test_a_connection_over_the_cap_gets_503_and_retry_after(
        start_server: StartServer, sockets: list[socket.socket]) -> None:
    running, _ = start_server(max_connections=8, request_header_timeout_s=30)
    for _ in range(8):
        connect(running, sockets)
    deadline = time.monotonic() + 5
    while len(running.server.server_state.connections) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    extra = connect(running, sockets)
    extra.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, headers, body = status_and_headers(read_until_closed(extra, time.monotonic() + 5))
    assert status == 503 and headers["retry-after"] == "2" and headers["connection"] == "close"
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["reason"] == "too_many_connections"
    for sock in sockets:
        sock.close()
    sockets.clear()
    deadline = time.monotonic() + 5
    while running.server.server_state.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=running.base_url, timeout=5) as fresh:
        assert fresh.get("/livez").status_code == 200
