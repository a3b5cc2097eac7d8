"""`trm import-official`: an official TRM checkpoint (and, for ARC, the `identifiers.json` its
dataset build wrote) into our checkpoint format.

    trm import-official step_100000 --config all_config.yaml --task arc \
        --identifiers data/arc-aug-1000/identifiers.json --task-data path/to/arc-json \
        --out checkpoints/arc/trm-arc1-official

The torch file is memory-mapped and read with `weights_only=True` (never a full unpickle), and the
weights are streamed into safetensors block by block, so a 1.8 GB puzzle table is not held twice.
The arch settings come from the official run's `all_config.yaml` (its `arch` section) or a JSON
file; what only the tensors or the task know (vocabulary, identifier count, grid size) is read
from them. `--arc-data` points at ARC JSON challenge files so the service can recognise a task a
client sends by its demonstration pairs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from trm_core.official_stream import convert_official, infer_config, load_official_mapped
from trm_core.tasks import get_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-official", help="convert an official TRM checkpoint")
    p.add_argument("weights", type=Path,
                   help="official torch file (mapped, weights only) or .safetensors")
    p.add_argument("--config", type=Path, required=True,
                   help="the official run's all_config.yaml, or JSON with its arch settings")
    p.add_argument("--task", required=True, help="the task the checkpoint was trained on")
    p.add_argument("--identifiers", type=Path,
                   help="the identifiers.json written by the same dataset build, for tasks "
                        "with puzzle identifiers (ARC)")
    p.add_argument("--task-data", "--arc-data", type=Path,
                   help="the task's own data beside the identifiers (ARC: a folder of "
                        "*_challenges.json, to recognise tasks by their demonstrations)")
    p.add_argument("--name", default="trm-imported")
    p.add_argument("--out", type=Path, required=True, help="output checkpoint stem")
    p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> dict[str, Any]:
    arch = read_arch_config(args.config)
    state = read_official(args.weights)
    config = infer_config(state, arch, get_task(args.task).seq_len)
    card = {"name": args.name, "task": args.task, "step": None,
            "data": {"imported_from": str(args.weights), "official_arch": arch}}
    stem = convert_official(state, config, args.out, card)
    summary: dict[str, Any] = {"checkpoint": str(stem),
                               "parameters": sum(int(t.numel()) for t in state.values()),
                               "puzzle_identifiers": config.num_puzzle_ids}
    if args.identifiers is not None:
        summary.update(get_task(args.task).import_identifiers(
            args.identifiers, args.task_data, stem, config.num_puzzle_ids))
    return summary


def read_arch_config(path: Path) -> dict[str, Any]:
    """The official arch settings from JSON (optionally under `official_config`) or from the
    official run's `all_config.yaml` (under `arch`)."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SystemExit(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or pass "
                             "the arch section as JSON") from None
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of arch settings")
    for section in ("official_config", "arch"):
        if isinstance(data.get(section), dict):
            data = data[section]
    return data


def read_official(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint: a torch file (mapped, weights only) or safetensors."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            keys = [k for k in handle.keys() if not k.startswith("test.")]  # noqa: SIM118
            return {k: handle.get_tensor(k) for k in keys}
    return load_official_mapped(path)
