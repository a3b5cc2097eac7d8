"""One prepared GPU session (issue #21): hard-maze and hard-Sudoku checkpoints and the GPU speed
figures within one command's time limit. Entry point and options: `__main__.py`.

    python -m training.gpu_session --out "$OUT"           # on the GPU machine, 9.5 minutes
    python -m training.gpu_session --tiny --out /tmp/s    # the same steps on a CPU, < 1 minute

  plan.py     what runs: phases (config, test set, recipe), budget, the tiny preset
  session.py  the order and the time slices; session.json
  data.py     training data built on all cores, in the background, or carried
  train.py    one phase: wall-clock learning-rate schedule, best weights shipped in bf16
  bench.py    benchmarks/train_step.py and benchmarks/gpu_inference.py under time limits
  clock.py    the session clock, child processes, the watchdog
"""
