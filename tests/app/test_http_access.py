"""Who may reach the service, over real HTTP: a `Host` outside TRM_ALLOWED_HOSTS gets 421 on
every route (DNS rebinding), and with API keys set `/metrics` takes a key unless
TRM_METRICS_PUBLIC opens it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from http_helpers import PUZZLE, assert_problem
from in_thread import RunningServer

StartServer = Callable[..., tuple[RunningServer, httpx.Client]]


@pytest.mark.parametrize("path", ["/v1/models", "/livez", "/metrics", "/openapi.json", "/",
                                  "/v1/examples/sudoku"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "localhost.evil"])
def test_an_unknown_host_is_421_everywhere(client: httpx.Client, path: str, host: str) -> None:
    problem = assert_problem(client.get(path, headers={"host": host}), 421)
    assert problem["type"].endswith("misdirected-request") and host in problem["detail"]


def test_an_unknown_host_cannot_solve(client: httpx.Client) -> None:
    response = client.post("/v1/solve/sudoku", json={"puzzle": PUZZLE},
                           headers={"host": "rebound.example:8000"})
    assert_problem(response, 421)


@pytest.mark.parametrize("host", ["localhost", "localhost:1234", "LOCALHOST:80", "127.0.0.1",
                                  "127.0.0.1:9", "[::1]", "[::1]:8000"])
def test_loopback_names_pass_with_any_port_or_none(client: httpx.Client, host: str) -> None:
    assert client.get("/v1/models", headers={"host": host}).status_code == 200


def test_allowed_hosts_come_from_settings(start_server: StartServer) -> None:
    _, http = start_server(allowed_hosts="api:*,trm.example:443")
    assert http.get("/livez", headers={"host": "api:8000"}).status_code == 200
    assert http.get("/livez", headers={"host": "trm.example:443"}).status_code == 200
    assert_problem(http.get("/livez", headers={"host": "trm.example:80"}), 421)
    assert_problem(http.get("/livez"), 421)  # 127.0.0.1 is no longer listed


def test_a_star_accepts_any_host(start_server: StartServer) -> None:
    _, http = start_server(allowed_hosts="*")
    assert http.get("/v1/models", headers={"host": "anything.example"}).status_code == 200


def test_metrics_are_open_without_keys(client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 200


def test_with_keys_metrics_take_a_key(start_server: StartServer) -> None:
    _, http = start_server(api_keys="scrape-key")
    assert_problem(http.get("/metrics"), 401)
    response = http.get("/metrics", headers={"Authorization": "Bearer scrape-key"})
    assert response.status_code == 200 and "trm_requests_total" in response.text


def test_metrics_public_opens_them_with_keys_set(start_server: StartServer) -> None:
    _, http = start_server(api_keys="k", metrics_public=True)
    assert http.get("/metrics").status_code == 200
    assert_problem(http.get("/v1/models"), 401)
