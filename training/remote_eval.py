"""Evaluation against a running service: every puzzle of a CSV goes through
`POST /v1/solve/{task}`, and the answers are scored exactly as `trm eval` scores a checkpoint.

Standard library HTTP only, so evaluating a deployment needs nothing beyond trm_core.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from trm_core.data import PuzzleSet
from trm_core.engine import JobResult
from trm_core.evaluate import score
from trm_core.tasks.base import Task


def _post(url: str, body: dict[str, Any], headers: dict[str, str], retries: int = 20) -> dict:
    """POST JSON; on 503 wait for Retry-After and try again (bounded)."""
    data = json.dumps(body).encode()
    for _ in range(retries):
        request = urllib.request.Request(url, data, {"content-type": "application/json",
                                                     **headers})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as err:
            if err.code != 503:
                raise ValueError(f"{url}: HTTP {err.code}: {err.read().decode()[:300]}") from None
            time.sleep(float(err.headers.get("Retry-After", "1")))
    raise ValueError(f"{url}: still overloaded after {retries} tries")


def _models(base_url: str, api_key: str | None) -> list[dict[str, Any]]:
    """What `GET /v1/models` lists; ValueError naming the URL when it cannot be read."""
    url = f"{base_url.rstrip('/')}/v1/models"
    request = urllib.request.Request(url, headers={"x-api-key": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return list(json.loads(response.read())["data"])
    except urllib.error.HTTPError as err:
        raise ValueError(f"{url}: HTTP {err.code}: {err.read().decode()[:300]}") from None
    except urllib.error.URLError as err:
        raise ValueError(f"{url}: {err.reason}") from None


def served_task(base_url: str, api_key: str | None = None) -> str:
    """The one task the service at `base_url` serves (from `GET /v1/models`); ValueError when
    it serves several or none, naming them."""
    tasks = sorted({str(model["task"]) for model in _models(base_url, api_key)})
    if len(tasks) != 1:
        raise ValueError(f"{base_url} serves {', '.join(tasks) or 'no task'}; name one with "
                         f"--task")
    return tasks[0]


def _precision_of(base_url: str, api_key: str | None, model_ids: list[str]) -> str | list[str]:
    """The precision the service runs `model_ids` at (`trm eval CKPT --dtype` reports the same
    field), one name when they agree."""
    served = {str(m["id"]): str(m.get("precision", "unknown")) for m in _models(base_url, api_key)}
    names = sorted({served.get(model_id, "unknown") for model_id in model_ids})
    return names[0] if len(names) == 1 else names


def _as_result(task: Task, reply: dict[str, Any]) -> JobResult:
    """A reply as the engine result it reports: a verified answer is its `grid`, an unverified
    one its `answer_grid`."""
    grid = reply.get("grid") or reply.get("answer_grid")
    answer = task.from_grid(grid) if grid else None
    return JobResult(job_id=str(reply.get("id", "")), status=reply["status"], answer=answer,
                     valid=bool(reply.get("valid")), steps_used=int(reply.get("steps_used", 0)),
                     halted_early=bool(reply.get("halted_early")),
                     confidence=float(reply.get("raw_confidence", 0.0)),
                     q_halt=float(reply.get("q_halt", 0.0)), attempt=int(reply.get("attempt", 0)),
                     attempts=int(reply.get("attempts", 1)), queue_ms=0.0, compute_ms=0.0,
                     total_ms=0.0, search=reply.get("search"))


def evaluate_service(base_url: str, task: Task, data: PuzzleSet, *, options: dict[str, Any],
                     concurrency: int = 16, api_key: str | None = None) -> dict[str, Any]:
    """Solve every puzzle through the service and score the answers against `data`."""
    url = f"{base_url.rstrip('/')}/v1/solve/{task.name}"
    headers = {"x-api-key": api_key} if api_key else {}
    bodies = [{"puzzle": task.format_puzzle(p), **options} for p in data.puzzles]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        replies = list(pool.map(lambda body: _post(url, body, headers), bodies))
    elapsed = time.perf_counter() - start
    report = score([_as_result(task, r) for r in replies], data, task)
    models = sorted({str(r.get("model")) for r in replies})
    report["settings"] = {**options, "puzzles": len(data), "data": data.provenance,
                          "service": base_url, "models": models, "concurrency": concurrency,
                          "precision": _precision_of(base_url, api_key, models)}
    report["speed"] = {"seconds": round(elapsed, 3),
                       "puzzles_per_s": round(len(data) / max(elapsed, 1e-9), 2)}
    report["checkpoint"] = {"id": models[0] if len(models) == 1 else models}
    return report
