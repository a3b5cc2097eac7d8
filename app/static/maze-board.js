// The maze board for the viewer (viewer.js drives it): a 30x30 grid of walls, open cells, S and
// G, with the model's path drawn over it step by step. Cells changed this step are outlined,
// path cells off a known shortest path are marked, and cells a parse error names are flagged.
// Mazes are edited in the text box (30 lines of 30 characters), not on the board.
"use strict";

const MazeBoard = (() => {
  const SIZE = 30, CELLS = SIZE * SIZE;
  const KIND = { "#": "wall", " ": "open", S: "start", G: "goal", o: "path" };
  let puzzle = " ".repeat(CELLS); // the maze as 900 characters
  let solution = null;            // known solution (900 characters) of an example

  const root = () => document.getElementById("maze");

  function build() {
    for (let i = 0; i < CELLS; i++) {
      const cell = document.createElement("div");
      cell.className = "mcell open";
      cell.dataset.index = String(i);
      root().appendChild(cell);
    }
  }

  // 30 lines, or one 900-character line, as 900 characters; short or missing rows read as
  // open so a half-typed maze still draws (the server reports what is wrong with it).
  function flatten(text) {
    const body = text.replace(/\r\n/g, "\n").replace(/\n$/, "");
    const rows = body.includes("\n") ? body.split("\n")
      : Array.from({ length: SIZE }, (_, r) => body.slice(r * SIZE, (r + 1) * SIZE));
    return Array.from({ length: SIZE }, (_, r) => (rows[r] || "").padEnd(SIZE).slice(0, SIZE))
      .join("");
  }

  function lines(flat) {
    return Array.from({ length: SIZE }, (_, r) => flat.slice(r * SIZE, (r + 1) * SIZE))
      .join("\n");
  }

  // Shows `text` as the maze; returns it as 30 lines for the text box.
  function setPuzzle(text, knownSolution) {
    puzzle = flatten(text);
    solution = knownSolution ? flatten(knownSolution) : null;
    draw(puzzle, []);
    return lines(puzzle);
  }

  function draw(grid, changed) {
    const changedSet = new Set(changed || []);
    const cells = root().children;
    for (let i = 0; i < CELLS; i++) {
      const ch = grid[i];
      const classes = ["mcell", KIND[ch] || "unknown"];
      if (changedSet.has(i)) classes.push("changed");
      if (ch === "o" && solution && solution[i] !== "o") classes.push("off");
      // The answer must copy walls, S and G; a cell where it does not is wrong.
      if (puzzle[i] !== " " && ch !== puzzle[i]) classes.push("broken");
      cells[i].className = classes.join(" ");
    }
    root().dataset.pathCells = String([...grid].filter((ch) => ch === "o").length);
  }

  function markCells(cells) {
    for (const [row, col] of cells || []) {
      const cell = root().children[row * SIZE + col];
      if (cell) cell.classList.add("flag");
    }
  }

  function stepStat(data) {
    if (data.path_length !== null && data.path_length !== undefined) {
      return `${data.path_length} steps`;
    }
    return `${data.path_cells ?? 0} cells`;
  }

  function resultNote(result) {
    if (result.path_complete) {
      return ` The path takes ${result.path_length} steps; the shortest takes `
        + `${result.shortest_length}.`;
    }
    return ` ${result.path.length} path cells do not join S to G; the shortest route takes `
      + `${result.shortest_length} steps.`;
  }

  return {
    name: "maze",
    title: "Maze",
    hint: "(30 lines of 30: # wall, space open, S start, G goal)",
    textRows: 10,
    build,
    setPuzzle,
    isEmpty: () => !puzzle.includes("S"),
    drawStep: (data) => draw(data.grid, data.changed_cells),
    drawResult: (result) => draw(result.solution || result.answer, []),
    setReadOnly: () => {},
    markCells,
    stepStat,
    resultNote,
    generatedNote: (example) => `A new ${example.difficulty} maze: shortest path `
      + `${example.path_length} steps, ${example.junctions} junctions on it.`,
  };
})();
