"""A task defined by a spec and data: the spec's checks, reading what users write, the
symmetries, splits disjoint under them, and `trm task init` reading a spec off the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.cli import main
from training.life_example import rows as life_rows
from training.life_example import step as life_step
from trm_core.tasks import adopt, unregister
from trm_core.tasks.base import PuzzleError
from trm_core.tasks.defined import DataTask, SpecError, load_spec, spec_from_dict
from trm_core.tasks.defined.dataset import DataError, Examples, read_examples, split

LIFE = {"name": "life", "alphabet": [".", "#"], "symmetries": ["dihedral"],
        "input": {"kind": "grid", "shape": [4, 4], "wrap": True},
        "output": {"kind": "grid", "shape": [4, 4]}}
ROUTE = {"name": "route", "alphabet": ["a", "b", "c"], "labels": ["left", "right"],
         "symmetries": ["reverse", "permute"], "fixed": ["a"],
         "input": {"kind": "sequence", "shape": [6]}, "output": {"kind": "label"}}
SORT = {"name": "sorted", "alphabet": [1, 2, 3, 10], "symmetries": [],
        "input": {"kind": "sequence", "shape": [5]}, "output": {"kind": "sequence",
                                                                "shape": [5]}}


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "Life!"}, "name must be lower-case"),
    ({"alphabet": []}, "alphabet must list at least one symbol"),
    ({"alphabet": [".", "."]}, "alphabet: '.' is listed twice"),
    ({"alphabet": [". "]}, "is empty or holds whitespace"),
    ({"input": {"kind": "grid", "shape": [31, 4]}}, "grids are at most 30x30"),
    ({"input": {"kind": "tree"}}, "input.kind must be one of grid, sequence"),
    ({"output": {"kind": "grid", "shape": [4]}}, "output.shape must be [rows, columns]"),
    ({"symmetries": ["mirror"]}, "symmetries must be a list of"),
    ({"keep": ["x"]}, "keep: 'x' is not in the alphabet"),
    ({"fixed": ["."]}, "fixed only applies with the 'permute' symmetry"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"output": {"kind": "label"}}, "output kind 'label' needs at least two labels"),
    ({"input": {"kind": "sequence", "shape": [4]}}, "'dihedral' needs a grid input"),
])
def test_a_spec_names_what_is_wrong(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec_from_dict({**LIFE, **change})


def test_grids_read_as_rows_lines_or_one_line_and_print_back() -> None:
    task = DataTask(spec_from_dict(LIFE))
    rows = [".#..", "..#.", "###.", "...."]
    cells = task.parse(rows)
    assert task.parse("\n".join(rows)).tolist() == cells.tolist()
    assert task.parse("".join(rows)).tolist() == cells.tolist()
    assert task.parse([list(r) for r in rows]).tolist() == cells.tolist()
    assert task.format(cells) == "".join(rows)
    assert task.output(cells) == [list(r) for r in rows]
    assert task.render(cells).splitlines()[2] == "# # # ."


@pytest.mark.parametrize(("raw", "message"), [
    ([".#..", "..x.", "###.", "...."], "unknown symbol 'x' at row 2, column 3"),
    ([".#..", "..#", "###.", "...."], "row 2 has 3 symbols, expected 4"),
    (".#..\n..#.\n###.", "expected 4 lines of 4 symbols, got 3 lines"),
    (".#..#", "got one line of 5"),
    (7, "expected a string or a list, got int"),
])
def test_a_bad_input_is_named(raw: object, message: str) -> None:
    task = DataTask(spec_from_dict(LIFE))
    with pytest.raises(PuzzleError, match=message):
        task.parse(raw)


def test_sequences_labels_and_integer_alphabets() -> None:
    route = DataTask(spec_from_dict(ROUTE))
    assert route.format_puzzle(route.parse("abcb")) == "abcb"
    label = route.parse_solution("right")
    assert route.format(label) == "right" and route.output(label) == "right"
    with pytest.raises(PuzzleError, match="unknown symbol 'up' at position 1; the labels are"):
        route.parse_solution("up")
    numbers = DataTask(spec_from_dict(SORT))
    assert numbers.parse([3, 1, 10]).tolist() == numbers.parse("3 1 10").tolist()
    assert numbers.output(numbers.parse_solution([1, 3, 10])) == [1, 3, 10]
    with pytest.raises(PuzzleError, match="expected 1 to 5 symbols, got 6"):
        numbers.parse([1, 2, 3, 1, 2, 3])


def test_symmetries_invert_and_canonical_forms_agree_across_a_class() -> None:
    rng = np.random.default_rng(0)
    for raw in (LIFE, ROUTE):
        task = DataTask(spec_from_dict(raw))
        puzzle = task.parse(".#..\n..#.\n###.\n...." if raw is LIFE else "abcbb")
        answer = task.parse_solution(".#..\n..#.\n###.\n...." if raw is LIFE else "left")
        key = task.canonical_form(puzzle)[0]
        for _ in range(16):
            symmetry = task.random_symmetry(rng)
            assert symmetry.invert(symmetry.apply_output(answer)).tolist() == answer.tolist()
            assert task.canonical_form(symmetry.apply(puzzle))[0] == key


def test_augmentation_keeps_the_rule() -> None:
    """A Life board and its next step, transformed alike, are still a board and its step."""
    task = DataTask(spec_from_dict({**LIFE, "input": {**LIFE["input"], "shape": [10, 10]},
                                    "output": {"kind": "grid", "shape": [10, 10]}}))
    rows = life_rows(8, seed=1)
    inputs = task.to_tokens(np.stack([task.parse(r["input"]) for r in rows]))
    labels = task.to_tokens(np.stack([task.parse_solution(r["output"]) for r in rows]))
    moved_in, moved_out = task.augment_tokens(inputs, labels, np.random.default_rng(0))
    assert not np.array_equal(moved_in, inputs)
    for board, step in zip(moved_in, moved_out, strict=True):
        alive = (task.from_tokens(board) == 2).reshape(10, 10)
        assert ((task.from_tokens(step) == 2).reshape(10, 10) == life_step(alive)).all()


def test_held_out_inputs_are_no_symmetric_image_of_a_trained_one() -> None:
    task = DataTask(spec_from_dict(LIFE))
    rng = np.random.default_rng(2)
    boards = [task.parse("".join(rng.choice([".", "#"], 16))) for _ in range(40)]
    # every board also appears rotated: a careless split would leak it
    symmetric = [task.random_symmetry(rng).apply(b) for b in boards]
    inputs = np.stack(boards + symmetric)
    parts = split(task, Examples(inputs, inputs, np.arange(len(inputs))), 0.2, 0.2, seed=0)
    keys = {name: {task.canonical_form(inputs[i])[0] for i in rows}
            for name, rows in parts.items()}
    assert keys["train"].isdisjoint(keys["test"]) and keys["train"].isdisjoint(keys["val"])
    assert sum(len(rows) for rows in parts.values()) == len(inputs)
    assert 10 <= len(parts["test"]) <= 22


def test_bad_rows_are_listed_by_line(tmp_path: Path) -> None:
    task = DataTask(spec_from_dict(LIFE))
    data = tmp_path / "data.jsonl"
    data.write_text('{"input": "................", "output": "................"}\n'
                    'not json\n'
                    '{"input": ".........x......", "output": "................"}\n'
                    '{"input": "................"}\n'
                    '{"input": "................", "output": "..."}\n')
    with pytest.raises(DataError) as caught:
        read_examples(data, task)
    text = str(caught.value)
    assert "4 bad row(s)" in text and "line 2: not JSON" in text
    assert "line 3: input: unknown symbol 'x' at row 3, column 2" in text
    assert 'line 4: expected an object with "input" and "output"' in text
    assert "line 5: output: expected 4 lines of 4 symbols or one line of 16" in text


def test_task_init_reads_the_spec_off_the_data(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "route.jsonl"
    data.write_text("".join(json.dumps({"input": word, "output": label}) + "\n"
                            for word, label in [("abc", "left"), ("cba", "right"),
                                                ("abcab", "left"), ("bb", "right")] * 3))
    assert main(["task", "init", "route", "--data", str(data),
                 "--dir", str(tmp_path / "route")]) == 0
    spec = load_spec(tmp_path / "route")
    assert spec.input.kind == "sequence" and spec.input.columns == 5
    assert spec.output.kind == "label" and set(spec.labels) == {"left", "right"}
    assert spec.alphabet == ("a", "b", "c")
    assert main(["task", "init", "route", "--dir", str(tmp_path / "route")]) == 2
    assert "exists" in capsys.readouterr().err


def test_a_folder_without_a_spec_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["data", str(tmp_path)]) == 2
    assert "nor a folder holding task.toml" in capsys.readouterr().err


def test_adopting_the_same_spec_again_takes_its_examples() -> None:
    """`trm data` then `trm train` in one process: the spec read after the split carries the
    held-out examples the checkpoint card must keep."""
    name = {**LIFE, "name": "life-adopt"}
    held = adopt(DataTask(spec_from_dict(name)))
    try:
        shown = [{"name": "line 1", "puzzle": "." * 16, "solution": "." * 16}]
        assert adopt(DataTask(spec_from_dict({**name, "examples": shown}))) is held
        assert held.examples() == shown
        assert adopt(DataTask(spec_from_dict(name))) is held and held.examples() == shown
    finally:
        unregister("life-adopt")


def test_a_sequence_to_label_task_trains_and_scores(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """The attention path end to end: a routing rule (more a's than b's: left), split, trained
    a few steps, scored; the run config chose attention with learned positions."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "route"
    folder.mkdir()
    words = ["".join(rng.choice(list("abc"), int(rng.integers(2, 7)))) for _ in range(80)]
    (folder / "data.jsonl").write_text("".join(
        json.dumps({"input": w, "output": "left" if w.count("a") > w.count("b") else "right"})
        + "\n" for w in words))
    (folder / "task.toml").write_text(
        'name = "route"\ndata = "data.jsonl"\nalphabet = ["a", "b", "c"]\n'
        'labels = ["left", "right"]\nsymmetries = ["reverse"]\n'
        '[input]\nkind = "sequence"\nshape = [6]\n[output]\nkind = "label"\n')
    try:
        assert main(["data", str(folder)]) == 0
        assert main(["train", str(folder), "--set", "model.hidden_size=16",
                     "--set", "train.total_steps=2", "--set", "train.eval_every=2",
                     "--set", "train.batch_size=8", "--set", "train.warmup_steps=1"]) == 0
        run = (folder / "run.toml").read_text()
        assert 'token_mixer = "attention"' in run and 'position_encoding = "learned"' in run
        assert main(["eval", str(folder / "checkpoint" / "trm-route"), "--data",
                     str(folder / "test.csv"), "--json", str(tmp_path / "r.json")]) == 0
        capsys.readouterr()
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["overall"]["puzzles"] == len((folder / "test.csv").read_text()
                                                   .splitlines()) - 1
    finally:
        unregister("route")


def test_kept_symbols_stay_in_every_answer_and_are_not_scored() -> None:
    task = DataTask(spec_from_dict({**LIFE, "name": "fill", "alphabet": [".", "1", "2"],
                                    "keep": ["1", "2"], "symmetries": []}))
    puzzle = task.parse("1...\n..2.\n....\n....")
    answer = task.parse("2222\n2222\n2222\n2222")
    kept = task.keep_givens(puzzle, answer)
    assert task.format(kept) == "1222" + "2222" * 3 and kept[6] == task.spec.code_of("2")
    assert task.scored_cells(puzzle).sum() == 14


MINI = {"name": "mini", "alphabet": [".", "1", "2", "3", "4"], "keep": ["1", "2", "3", "4"],
        "symmetries": ["dihedral"], "input": {"kind": "grid", "shape": [4, 4]},
        "output": {"kind": "grid", "shape": [4, 4]},
        "check": {"units": ["rows", "columns", "boxes"], "box": [2, 2],
                  "values": ["1", "2", "3", "4"]}}


@pytest.mark.parametrize(("change", "message"), [
    ({"units": ["diagonals"]}, "check.units must list some of"),
    ({"box": [3, 2]}, "check.box must be .rows, columns. dividing the 4x4 grid"),
    ({"values": ["1", "2", "3"]}, "each of the rows holds 4 cells, but values lists 3"),
    ({"values": ["1", "2", "3", "9"]}, "check.values must list distinct alphabet symbols"),
    ({"colour": 1}, "check.colour is not a key"),
])
def test_a_check_names_what_is_wrong(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**MINI, "check": {**MINI["check"], **change}})


def test_a_declared_check_verifies_answers_and_names_clashes() -> None:
    task = DataTask(spec_from_dict(MINI))
    assert task.can_verify and "every rows and columns and boxes holds" in task.answer_note
    puzzle = task.parse("1...\n...2\n....\n...1")
    good = task.parse("1234\n3412\n2143\n4321")
    assert task.verify(puzzle, good)
    assert not task.verify(task.parse("2...\n...2\n....\n...1"), good)  # a given changed
    bad = task.parse("1234\n3412\n2143\n4322")  # 2 twice in a row, a column and a box
    assert not task.verify(puzzle, bad)
    clashes = task.conflicts(puzzle, bad)
    assert clashes is not None and np.flatnonzero(clashes).tolist() == [7, 14, 15]
    assert DataTask(spec_from_dict(LIFE)).conflicts(puzzle, bad) is None
    with pytest.raises(SpecError, match="turns a non-square box sideways"):
        spec_from_dict({**MINI, "alphabet": list(".123456"), "keep": [],
                        "input": {"kind": "grid", "shape": [4, 6]},
                        "output": {"kind": "grid", "shape": [4, 6]},
                        "check": {"units": ["rows", "boxes"], "box": [2, 3],
                                  "values": list("123456")}})
