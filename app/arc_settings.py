"""ARC's settings group (`TRM_ARC_*`): defaults and limits of `POST /v1/solve/arc` and
`POST /v1/jobs/arc`, their adaptation and their admission. `app.settings.Settings` inherits it
(through `app.task_models.TaskSettings`), so these are read and documented like any setting.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ArcSettings(BaseModel):
    """The ARC fields of `Settings`."""

    arc_versions: int = Field(
        default=8, ge=1, description="augmented versions voted over when a request names none")
    arc_max_versions: int = Field(default=256, ge=1, description="most versions a request may "
                                                                 "ask for")
    arc_adapt_budget_s: float = Field(
        default=10.0, gt=0, description="test-time adaptation seconds when a request names none")
    arc_adapt_max_budget_s: float = Field(
        default=60.0, gt=0, description="cap on a request's adapt_budget_s")
    arc_adapt_max_steps: int = Field(
        default=300, ge=1, description="optimizer steps of one adaptation at most")
    arc_adapt_cache_size: int = Field(
        default=64, ge=0, description="adapted tasks whose rows stay in memory (LRU)")
    # What one ARC request may cost. A fit keeps the carry of every example (pairs x versions;
    # 3.75 MB each at paper size) and runs one fit at a time, so both are capped per request.
    arc_max_pairs: int = Field(default=16, ge=1,
                               description="most demonstration pairs (train) a request may send")
    arc_max_test_inputs: int = Field(default=8, ge=1,
                                     description="most test inputs a request may send")
    arc_max_examples: int = Field(
        default=256, ge=1, description="most examples (demonstration pairs x versions) one "
                                       "adaptation may fit; larger requests get 422")
    arc_adapt_micro_batch: int = Field(
        default=32, ge=1, description="examples per forward/backward pass of an adaptation "
                                      "(gradients add up to one step; budget and "
                                      "cancellation are checked between them)")
    arc_max_queue_size: int = Field(
        default=8, ge=1, description="ARC requests admitted and unfinished per model (they "
                                     "adapt one at a time), beyond which 503 + Retry-After")
