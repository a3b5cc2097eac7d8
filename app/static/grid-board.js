// The board for a task defined by data (a task.toml spec, served from its checkpoint card):
// makeGridBoard(spec) returns an object with the methods viewer.js drives, as SudokuBoard and
// MazeBoard offer, built from the spec /v1/models lists as `task_spec`. It draws the input (a
// grid, or a sequence as one wrapping row) and, step by step, the output (a grid, a sequence or
// a label chip): each symbol a fixed colour by its index (ARC's palette), the symbol written in
// its cell, cells changed this step outlined, cells that differ from a known solution marked.
// Without a declared check (`[check]` in its spec) every answer is unverified. Puzzles are edited in the text
// box (lines of symbols), not on the board.
"use strict";

// ARC's ten colours, then four more; symbol i (alphabet, then labels) takes PALETTE[i % 14].
const PALETTE = ["#000000", "#0074d9", "#ff4136", "#2ecc40", "#ffdc00", "#aaaaaa", "#f012be",
                 "#ff851b", "#7fdbff", "#870c25", "#3d9970", "#b10dc9", "#01ff70", "#85144b"];
const DARK = new Set([0, 1, 2, 6, 9, 10, 11, 13]); // palette entries that take white text
const BOARD_WIDTH = 470;  // px the board panel offers (the Sudoku board's width)

function makeGridBoard(spec) {
  const symbols = [...spec.alphabet, ...spec.labels].map(String);
  const compact = spec.alphabet.every((s) => String(s).length === 1);
  const input = layoutOf(spec.input), output = layoutOf(spec.output);
  let puzzle = [];          // the input's symbols as typed, row-major (missing ones undefined)
  let solution = null;      // known solution: the output's symbols, or null

  const root = () => document.getElementById("data-board");
  const panel = (side) => root().querySelector(`[data-side=${side}]`);

  function layoutOf(side) {
    const shape = side.shape || [];
    if (side.kind === "grid") return { kind: "grid", rows: shape[0], columns: shape[1] };
    if (side.kind === "sequence") return { kind: "sequence", rows: 1, columns: shape[0] };
    return { kind: "label", rows: 1, columns: 1 };
  }

  // One symbol's text per value: compact rows are read character by character, others split
  // on whitespace (as DataTask reads them).
  function split(line) {
    return compact ? [...line.replace(/\s+/g, "")] : line.trim().split(/\s+/).filter(Boolean);
  }

  // The typed input as symbols, row-major; one line of rows x columns symbols reads as a grid.
  function readInput(text) {
    const lines = text.replace(/\r\n/g, "\n").split("\n").filter((l) => l.trim());
    if (input.kind === "sequence" || lines.length <= 1) return split(lines.join(" "));
    return lines.flatMap((line) => {
      const row = split(line).slice(0, input.columns);
      return row.concat(Array(input.columns - row.length).fill(undefined));
    });
  }

  // An answer or solution in the output layout's compact form, as symbols ("?": nothing).
  function readOutput(text) {
    if (output.kind === "label") return [String(text).trim()];
    return compact ? [...String(text)] : String(text).trim().split(/\s+/);
  }

  function linesOf(values) {
    const sep = compact ? "" : " ";
    if (input.kind !== "grid" || values.length !== input.rows * input.columns) {
      return values.join(sep);
    }
    return Array.from({ length: input.rows }, (_, r) => values
      .slice(r * input.columns, (r + 1) * input.columns).join(sep)).join("\n");
  }

  function cellSize(layout) {
    const sideBySide = input.kind === "grid" && output.kind === "grid";
    const room = sideBySide ? (BOARD_WIDTH - 20) / 2 : BOARD_WIDTH;
    const wide = layout.kind === "sequence" ? Math.min(layout.columns, 20) : layout.columns;
    return Math.max(6, Math.min(36, Math.floor(room / wide)));
  }

  function makePanel(side, layout, caption) {
    const box = document.createElement("figure");
    box.className = "dpanel";
    box.dataset.side = side;
    const cells = document.createElement("div");
    cells.className = "dcells";
    cells.dataset.kind = layout.kind;
    cells.setAttribute("aria-label", caption);
    const size = cellSize(layout);
    cells.style.setProperty("--dcell", `${size}px`);
    cells.style.setProperty("--dcols", String(layout.kind === "grid" ? layout.columns
      : Math.min(layout.columns, 20)));
    cells.classList.toggle("tiny", size < 13);
    const count = layout.kind === "label" ? 1 : layout.rows * layout.columns;
    for (let i = 0; i < count; i++) {
      const cell = document.createElement("div");
      cell.className = layout.kind === "label" ? "dlabel" : "dcell";
      cell.dataset.index = String(i);
      cells.appendChild(cell);
    }
    const label = document.createElement("figcaption");
    label.className = "muted";
    label.textContent = caption;
    box.append(label, cells);
    return box;
  }

  function buildLegend() {
    const legend = document.getElementById("data-symbols");
    legend.textContent = "";
    symbols.forEach((symbol, i) => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.className = "swatch";
      swatch.style.background = PALETTE[i % PALETTE.length];
      item.append(swatch, symbol);
      legend.appendChild(item);
    });
  }

  // Builds this task's panels into the shared root (called each time the task is shown).
  // What the page header says of this task's answers: checked, or unverified.
  const checkText = spec.check
    ? `A task defined by data, with a rules check: every ${spec.check.units.join(" and ")} `
      + `holds each of ${spec.check.values.join(" ")} once.`
    : "A task defined by data has no rules check: every answer is unverified.";

  function build() {
    document.getElementById("defined-check").textContent = checkText;
    root().textContent = "";
    root().dataset.task = spec.name;
    root().append(makePanel("input", input, "input"), makePanel("output", output, "answer"));
    buildLegend();
    draw("input", puzzle, input, []);
    draw("output", [], output, []);
  }

  // Paints one panel: `values` row-major; undefined = nothing typed, "?" = nothing decided.
  function draw(side, values, layout, changed) {
    const changedSet = new Set(changed || []);
    const known = side === "output" ? solution : null;
    const cells = panel(side).querySelector(".dcells").children;
    for (let i = 0; i < cells.length; i++) {
      const value = values[i];
      const index = value === undefined ? -1 : symbols.indexOf(String(value));
      const cell = cells[i];
      cell.textContent = value === undefined ? "" : String(value);
      cell.className = `${layout.kind === "label" ? "dlabel" : "dcell"}`
        + (value === undefined ? " empty" : index < 0 ? " none" : "")
        + (DARK.has(index % PALETTE.length) && index >= 0 ? " dark" : "")
        + (changedSet.has(i) ? " changed" : "")
        + (known && value !== undefined && known[i] !== String(value) ? " off" : "");
      cell.style.background = index >= 0 ? PALETTE[index % PALETTE.length] : "";
    }
    panel(side).dataset.values = values.map((v) => (v === undefined ? "" : v)).join(" ");
  }

  // Shows `text` as the puzzle (the answer panel cleared); returns it as lines for the text box.
  function setPuzzle(text, knownSolution) {
    puzzle = readInput(text || "");
    solution = knownSolution ? readOutput(knownSolution) : null;
    if (root().dataset.task !== spec.name) build();
    draw("input", puzzle, input, []);
    draw("output", [], output, []);
    return text && text.includes("\n") ? text.replace(/\r\n/g, "\n") : linesOf(puzzle);
  }

  function markCells(cells) {
    const shown = panel("input").querySelector(".dcells").children;
    for (const [row, col] of cells || []) {
      const cell = shown[row * input.columns + col];
      if (cell) cell.classList.add("flag");
    }
  }

  // A result's answer from its cell codes (code k is symbols[k - 1], 0 nothing decided).
  function answerOf(result) {
    const codes = (result.answer_grid || []).flat();
    if (!codes.length) return readOutput(result.answer);
    let values = codes.map((code) => (code ? symbols[code - 1] : "?"));
    if (output.kind === "sequence") {
      const end = codes.indexOf(0);
      values = values.slice(0, end < 0 ? values.length : end);
    }
    return values.slice(0, output.kind === "label" ? 1 : output.rows * output.columns);
  }

  function differs(values) {
    if (!solution) return null;
    const length = Math.max(values.length, solution.length);
    return Array.from({ length }, (_, i) => values[i] !== solution[i]).filter(Boolean).length;
  }

  function resultNote(result) {
    const wrong = differs(answerOf(result));
    const known = wrong === null ? ""
      : wrong === 0 ? " It matches the example's known solution."
        : ` ${wrong} ${output.kind === "label" ? "label differs" : "cells differ"} from the `
          + "example's known solution (marked).";
    if (spec.check) return known;  // the verdict says whether it passed the check
    return " This task has no rules check, so the answer is unverified." + known;
  }

  const shapeText = (layout) => (layout.kind === "grid"
    ? `${layout.rows} lines of ${layout.columns}` : `up to ${layout.columns}`);

  return {
    name: spec.name,
    kind: "defined",
    title: spec.name,
    hint: `(${spec.description ? `${spec.description}; ` : ""}${shapeText(input)} symbols`
      + `${compact ? "" : " separated by spaces"}: ${spec.alphabet.join(" ")})`,
    textRows: input.kind === "grid" ? Math.min(input.rows, 10) : 3,
    textWrap: input.kind === "grid" ? "off" : "soft",
    generates: false,
    build,
    setPuzzle,
    isEmpty: () => !puzzle.some((v) => v !== undefined),
    drawStep: (data) => draw("output", readOutput(data.grid), output, data.changed_cells),
    drawResult: (result) => draw("output", answerOf(result), output, []),
    setReadOnly: () => {},
    markCells,
    stepStat: () => null,
    resultNote,
    generatedNote: () => "",
  };
}
