"""Python client for trm-serve.

    from trm_client import Client
    with Client("http://127.0.0.1:8000") as trm:
        result = trm.solve("sudoku", puzzle, halting="auto")   # SolveResult
        for step in trm.stream("sudoku", puzzle):              # StepEvent per step
            print(step.step, step.changed, step.q_halt)
"""

from trm_client.async_client import AsyncClient, AsyncSolveStream
from trm_client.client import Client, SolveStream
from trm_client.errors import (
    BadRequest,
    Conflict,
    InvalidPuzzle,
    NotFound,
    Overloaded,
    Timeout,
    TRMError,
    Unauthorized,
)
from trm_client.models import Job, ModelInfo, SolveResult, StepEvent

__all__ = ["AsyncClient", "AsyncSolveStream", "BadRequest", "Client", "Conflict",
           "InvalidPuzzle", "Job", "ModelInfo", "NotFound", "Overloaded", "SolveResult",
           "SolveStream", "StepEvent", "Timeout", "TRMError", "Unauthorized"]
__version__ = "0.1.0"
