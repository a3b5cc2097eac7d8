"""What one GPU session does: the two training phases (config, committed test set, recipe), the
time budget, and the tiny CPU preset the test runs. Validated once, here, where it is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path("training/data")
CONFIGS = Path("training/configs")

# The sample-efficient recipe (anchors.md, "Sample-efficient recipes"; jvdillon/sic's Sudoku
# runs): Muon on the reasoner's matrices at a high peak lr, cosine to zero, label smoothing 0.2,
# EMA 0.9, AdamW 1e-4 on embeddings and heads. sic's Muon lr 0.02 is on Muon's own scale; ours
# (`adjust_lr_fn="match_rms_adamw"`) is on AdamW's, where the same update RMS for 512-wide
# matrices is about 4e-3. Its weight decay is 1e-4 / lr per optimizer; ours is one number for
# both, so 0.05 sits between Muon's 0.005 and AdamW's 1.0. The cosine runs on wall-clock time
# (`train.SessionTrainer`), so it reaches zero when the phase's time is up, whatever the speed.
# total_steps is only a ceiling: the time limit ends every phase.
RECIPE = ("train.optimizer=muon", "train.muon_lr=4e-3", "train.muon_momentum=0.6",
          "train.lr=1e-4", "train.weight_decay=0.05", "train.label_smoothing=0.2",
          "train.ema_rate=0.9", "train.lr_min_ratio=0", "train.warmup_steps=100",
          "train.total_steps=1000000", "train.compile=reduce-overhead", "train.autocast=auto")

# Small enough that the whole session runs on a 2-core CPU in well under a minute.
TINY_MODEL = ("model.hidden_size=32", "model.num_heads=2", "model.expansion=2.0",
              "model.swiglu_multiple=32", "model.recursions=1", "model.latent_updates=1",
              "model.max_supervision_steps=2")
TINY_TRAIN = ("train.device=cpu", "train.compile=off", "train.batch_size=4",
              "train.eval_batch_size=8", "train.eval_every=10", "train.warmup_steps=1",
              "train.threads=1")


@dataclass(frozen=True)
class PhaseSpec:
    """One model the session trains: its run config, the committed test set whose first
    `select_puzzles` rows pick the best checkpoint (the rest score it once at the end), the
    test sets the generated training data must avoid, and the recipe on top of the config."""

    name: str  # output stem in --out and run folder in --work
    task: str
    difficulty: str
    config: Path
    test_csv: Path
    exclude: tuple[Path, ...]
    recipe: tuple[str, ...]
    select_puzzles: int


# Maze-Hard: batch 128 without augmentation, as the public 2,500-step run (dihedral
# augmentation hurt it there); Sudoku: batch 384 with the task's symmetries.
PHASES = (
    PhaseSpec("maze-hard", "maze", "hard", CONFIGS / "maze-hard-gpu.toml",
              DATA / "maze-hard-test.csv",
              (DATA / "maze-hard-test.csv", DATA / "maze-easy-test.csv"),
              (*RECIPE, "train.batch_size=128", "train.augment=false", "train.eval_every=300",
               "train.eval_batch_size=200"), 200),
    PhaseSpec("sudoku-hard", "sudoku", "hard", CONFIGS / "sudoku-hard-gpu.toml",
              DATA / "sudoku-hard-test.csv",
              tuple(DATA / f"sudoku-{level}-test.csv"
                    for level in ("hard", "easy", "medium", "sparse")),
              (*RECIPE, "train.batch_size=384", "train.eval_every=500",
               "train.eval_batch_size=500"), 500),
)
PHASE_NAMES = tuple(spec.name for spec in PHASES)
SKIPPABLE = (*PHASE_NAMES, "bench")


@dataclass(frozen=True)
class SessionPlan:
    """The session's budget and inputs. Times are wall-clock seconds from the start of the
    command; the maze phase gets `maze_s`, the Sudoku phase what is left after `bench_s` and
    `slack_s` are set aside."""

    out: Path
    work: Path = Path("runs/gpu-session")
    time_limit_s: float = 570.0
    maze_s: float = 300.0
    bench_s: float = 60.0
    slack_s: float = 10.0  # final writes, and the margin the watchdog adds past the limit
    train_counts: dict[str, int] = field(default_factory=lambda: {"maze-hard": 40_000,
                                                                  "sudoku-hard": 50_000})
    prebuilt: dict[str, Path] = field(default_factory=dict)  # phase -> carried train.csv
    workers: int = 0  # data-building processes; 0 = all cores
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # phase -> --set
    skip: tuple[str, ...] = ()
    select_cap: int = 0  # at most this many selection puzzles (0: the phase's own number)
    held_out_cap: int = 0  # at most this many held-out puzzles (0: the whole rest)
    bench_device: str = "cuda"

    def __post_init__(self) -> None:
        for name in ("time_limit_s", "maze_s", "bench_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.maze_s + self.bench_s + self.slack_s >= self.time_limit_s:
            raise ValueError(f"maze_s {self.maze_s} + bench_s {self.bench_s} + slack "
                             f"{self.slack_s} leave nothing of time_limit_s {self.time_limit_s}")
        unknown = sorted(set(self.skip) - set(SKIPPABLE))
        if unknown:
            raise ValueError(f"cannot skip {unknown}; choose from {', '.join(SKIPPABLE)}")
        for phase, path in self.prebuilt.items():
            if not Path(path).exists():
                raise ValueError(f"prebuilt {phase} data {path} does not exist")

    def sets_for(self, spec: PhaseSpec) -> list[str]:
        """The phase's run overrides: recipe first, then this session's."""
        return [*spec.recipe, *self.overrides.get(spec.name, ())]

    def select_count(self, spec: PhaseSpec) -> int:
        return min(spec.select_puzzles, self.select_cap or spec.select_puzzles)


def parse_sets(pairs: list[str]) -> dict[str, tuple[str, ...]]:
    """`["maze-hard:train.lr=1e-3", "model.hidden_size=64"]` -> per-phase override tuples; an
    override without a `PHASE:` prefix applies to every phase."""
    per_phase: dict[str, list[str]] = {name: [] for name in PHASE_NAMES}
    for pair in pairs:
        phase, sep, rest = pair.partition(":")
        if sep and phase not in per_phase:
            raise ValueError(f"--set {pair!r}: unknown phase {phase!r}; "
                             f"choose from {', '.join(PHASE_NAMES)}")
        for name in ([phase] if sep else PHASE_NAMES):
            per_phase[name].append(rest if sep else pair)
    return {name: tuple(sets) for name, sets in per_phase.items()}


def tiny(plan: SessionPlan) -> SessionPlan:
    """The same session at CPU-test sizes: tiny models, a few dozen puzzles, seconds per phase;
    the benchmarks run their CPU paths. Explicit --set overrides still come last. The time
    limit stays the caller's (the command's --tiny default is 45 s)."""
    tiny_sets = {"maze-hard": (*TINY_MODEL, "model.puzzle_emb_dim=32", *TINY_TRAIN),
                 "sudoku-hard": (*TINY_MODEL, *TINY_TRAIN)}
    overrides = {name: (*tiny_sets[name], *plan.overrides.get(name, ())) for name in PHASE_NAMES}
    return dataclasses.replace(plan, maze_s=12.0, bench_s=14.0, slack_s=3.0, overrides=overrides,
                               train_counts={"maze-hard": 32, "sudoku-hard": 16},
                               select_cap=8, held_out_cap=8, bench_device="cpu")
