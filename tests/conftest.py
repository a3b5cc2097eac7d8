"""Suite-wide settings: tiny models run fastest on one thread, and one thread per test process
keeps the suite steady when other work shares the machine.

The service's default search budget is off here: the contract tests count the steps of single
passes of untrained models, which search would extend. Tests of search set budgets explicitly
(tests/core/test_search.py, tests/app/test_http_search.py)."""

import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("TRM_SEARCH_BUDGET_STEPS", "0")
