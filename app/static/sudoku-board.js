// The Sudoku board for the viewer (viewer.js drives it): 81 editable cells with thick box
// borders; givens bold, cells changed this step yellow, unsure cells shaded, digits that differ
// from a known solution red, and the cells of an unverified answer that break a rule outlined.
"use strict";

const SudokuBoard = (() => {
  const CELLS = 81;
  let givens = new Array(CELLS).fill(0); // digits of the puzzle being shown, 0 = blank
  let solution = null;                   // known solution of an example, to mark wrong cells
  let onEdit = () => {};                 // called with the puzzle string after a cell edit

  const root = () => document.getElementById("grid");
  const cellAt = (i) => root().children[i];

  function build(editCallback) {
    onEdit = editCallback;
    for (let i = 0; i < CELLS; i++) {
      const cell = document.createElement("input");
      const row = Math.floor(i / 9), col = i % 9;
      cell.className = "cell";
      cell.maxLength = 1;
      cell.inputMode = "numeric";
      cell.dataset.index = String(i);
      cell.setAttribute("aria-label", `row ${row + 1} column ${col + 1}`);
      cell.classList.toggle("box-right", col % 3 === 2);
      cell.classList.toggle("box-bottom", row % 3 === 2);
      cell.classList.toggle("last-col", col === 8);
      cell.classList.toggle("last-row", row === 8);
      cell.addEventListener("input", () => onCellInput(i));
      cell.addEventListener("keydown", (event) => onCellKey(i, event));
      root().appendChild(cell);
    }
  }

  function onCellInput(i) {
    const cell = cellAt(i);
    const digit = cell.value.replace(/[^1-9]/g, "").slice(-1);
    cell.value = digit;
    givens[i] = digit ? Number(digit) : 0;
    solution = null;
    drawGivens();
    onEdit(puzzleText());
  }

  function onCellKey(i, event) {
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -9, ArrowDown: 9 };
    if (event.key in moves) {
      const next = i + moves[event.key];
      if (next >= 0 && next < CELLS) cellAt(next).focus();
      event.preventDefault();
    }
  }

  function puzzleText() {
    return givens.map((d) => (d ? String(d) : ".")).join("");
  }

  // Mirrors the server's parser loosely: separators and whitespace are ignored, 0 is a blank.
  function clean(text) { return text.replace(/[\s|+\-]/g, "").replace(/0/g, "."); }

  // Shows `text` as the puzzle; returns its cleaned form for the text box.
  function setPuzzle(text, knownSolution) {
    const cleaned = clean(text);
    givens = Array.from({ length: CELLS }, (_, i) => {
      const ch = cleaned[i] || ".";
      return /[1-9]/.test(ch) ? Number(ch) : 0;
    });
    solution = knownSolution || null;
    drawGivens();
    return cleaned;
  }

  function drawGivens() {
    for (let i = 0; i < CELLS; i++) {
      const cell = cellAt(i);
      const given = givens[i] !== 0;
      cell.value = given ? String(givens[i]) : "";
      cell.classList.toggle("given", given);
      cell.classList.remove("changed", "wrong", "conflict");
      cell.style.setProperty("--tint", "0%");
    }
  }

  // Draws an answer. A given always shows the puzzle's digit; should an answer ever disagree
  // with it, the cell is flagged rather than silently shown as given.
  function drawGrid(grid, changed, confidence, conflicts) {
    const changedSet = new Set(changed || []);
    const conflictSet = new Set((conflicts || []).map(([row, col]) => row * 9 + col));
    for (let i = 0; i < CELLS; i++) {
      const cell = cellAt(i);
      const ch = grid[i];
      const digit = /[1-9]/.test(ch) ? ch : "";
      const changedGiven = givens[i] !== 0 && digit !== String(givens[i]);
      cell.classList.toggle("conflict", conflictSet.has(i) || changedGiven);
      if (givens[i]) continue;
      cell.value = digit;
      cell.classList.toggle("changed", changedSet.has(i));
      cell.classList.toggle("wrong", !!solution && cell.value !== solution[i]);
      cell.style.setProperty("--tint", tint(confidence ? confidence[i] : 1));
    }
  }

  // A result's answer: the verified solution, or the unverified answer with its conflicts.
  function drawResult(result) {
    drawGrid(result.solution || result.answer, [], null, result.conflicts);
  }

  // The model is rarely below 0.6 on a cell, so the shading spans 1.0 (none) to 0.6 (full).
  function tint(confidence) {
    return `${Math.round(Math.min(1, Math.max(0, (1 - confidence) / 0.4)) * 75)}%`;
  }

  function setReadOnly(readOnly) {
    for (let i = 0; i < CELLS; i++) cellAt(i).readOnly = readOnly;
  }

  return {
    name: "sudoku",
    title: "Sudoku",
    hint: "(81 characters, “.” or 0 for a blank)",
    textRows: 3,
    build,
    setPuzzle,
    isEmpty: () => !givens.some(Boolean),
    drawStep: (data) => drawGrid(data.grid, data.changed_cells, data.cell_confidence, []),
    drawResult,
    setReadOnly,
    markCells: () => {},
    stepStat: () => null,
    resultNote: (result) => (result.conflicts && result.conflicts.length
      ? ` ${result.conflicts.length} cells break a rule (outlined in red).` : ""),
    generatedNote: (example) => `A new ${example.difficulty} puzzle: ${example.givens} givens.`,
  };
})();
