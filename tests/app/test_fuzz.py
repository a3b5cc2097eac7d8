"""A bounded fuzz run against the live service (real HTTP, the shipped tiny model): schemathesis
generates requests for every operation of `/openapi.json`, valid and invalid, from a fixed seed,
and every answer must be something other than a server error and must match the document (the
status is documented and the JSON body fits its schema).

Bounded: a fixed number of examples per operation and no deep shrinking, so the run takes
well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from in_thread import serve_in_thread
from schemathesis.checks import not_a_server_error, response_schema_conformance
from shipped_models import tiny_only

from app.schemas import EXAMPLE_PUZZLE
from app.settings import Settings
from trm_core.tasks.sudoku_examples import EXAMPLES as SUDOKU_EXAMPLES

SEED = 20240518
EXAMPLES_PER_OPERATION = 40
# Random strings rarely name a task or make a puzzle, so most cases would stop at 404 or 422;
# these values are drawn most of the time instead, and the cases reach the model.
TASKS = ["sudoku", "maze", "arc"]
PUZZLES = [EXAMPLE_PUZZLE, SUDOKU_EXAMPLES[1]["puzzle"], "." * 81, "5" * 81]
# Generating a puzzle is a search that can take a second per case; the generator's own tests
# cover those routes (tests/app/test_http_examples.py, test_viewer_http.py, test_maze_http.py).
GENERATING = r"^/v1/examples/\{task\}(/generate)?$"
# Exporting a model's bundle runs the ONNX exporter (seconds), once per model.
BUNDLES = r"^/v1/models/\{[^}]+\}/bundle"


@pytest.fixture(scope="module")
def api_schema() -> Iterator[Any]:
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4,
                        torch_threads=1, max_budget_steps=64, request_timeout_s=10,
                        job_ttl_s=60)
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "dictionaries": {"tasks": {"values": TASKS}, "puzzles": {"values": PUZZLES}},
        "parameters": {"path.task": {"dictionary": "tasks", "probability": 0.9},
                       "body.task": {"dictionary": "tasks", "probability": 0.9},
                       "body.puzzle": {"dictionary": "puzzles", "probability": 0.7}},
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "no-shrink": True,
                       "database": "none", "deterministic": True},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "request-timeout": 30,
    })
    with serve_in_thread(settings) as running:
        yield schemathesis.openapi.from_url(f"{running.base_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    path_regex=GENERATING).exclude(path_regex=BUNDLES)


@pytest.mark.slow
@schema.parametrize()
def test_every_answer_matches_the_document(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
