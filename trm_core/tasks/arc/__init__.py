"""ARC-AGI, the whole task: grids on the 30x30 canvas and the task object (grids.py), the
dataset builder (build.py), puzzle rows -> task versions (identifiers.py), builds as training
data (train_data.py), voting and pass@K (vote.py), test-time adaptation (adapt.py) and what it
buys on unseen tasks (unseen.py)."""

from trm_core.tasks.arc.grids import ArcTask

__all__ = ["ArcTask"]
