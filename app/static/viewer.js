// The Sudoku viewer: builds the 9x9 board, loads examples and generated puzzles, and streams a
// solve (POST /v1/solve/sudoku with "stream": true, read with fetch so an API key can ride in
// a header, which EventSource cannot send), replaying each supervision step at a chosen pace.
"use strict";

const CELLS = 81;
const KEY_STORE = "trm-api-key";
const $ = (id) => document.getElementById(id);

const state = {
  givens: new Array(CELLS).fill(0), // digits of the puzzle being shown, 0 = blank
  solution: null,                   // known solution of an example, to mark wrong cells
  controller: null,                 // AbortController of the running stream
  run: 0,                           // increments per solve so stale replays stop drawing
  chain: Promise.resolve(),         // the replay queue: one step drawn after another
  examples: [],
};

// ------------------------------------------------------------------------------ the board

function cellAt(i) { return $("grid").children[i]; }

function buildGrid() {
  const grid = $("grid");
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
    grid.appendChild(cell);
  }
}

function onCellInput(i) {
  const cell = cellAt(i);
  const digit = cell.value.replace(/[^1-9]/g, "").slice(-1);
  cell.value = digit;
  state.givens[i] = digit ? Number(digit) : 0;
  state.solution = null;
  resetRun();
  drawGivens();
  $("puzzle-text").value = puzzleString();
  $("example").value = "";
}

function onCellKey(i, event) {
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -9, ArrowDown: 9 };
  if (event.key in moves) {
    const next = i + moves[event.key];
    if (next >= 0 && next < CELLS) cellAt(next).focus();
    event.preventDefault();
  }
}

function puzzleString() {
  return state.givens.map((d) => (d ? String(d) : ".")).join("");
}

// Mirrors the server's parser loosely: separators and whitespace are ignored, 0 is a blank.
function cleanPuzzle(text) { return text.replace(/[\s|+\-]/g, "").replace(/0/g, "."); }

function setPuzzle(text, solution, keepText = false) {
  const clean = cleanPuzzle(text);
  state.givens = Array.from({ length: CELLS }, (_, i) => {
    const ch = clean[i] || ".";
    return /[1-9]/.test(ch) ? Number(ch) : 0;
  });
  state.solution = solution || null;
  if (!keepText) $("puzzle-text").value = clean;
  resetRun();
  drawGivens();
}

function drawGivens() {
  for (let i = 0; i < CELLS; i++) {
    const cell = cellAt(i);
    const given = state.givens[i] !== 0;
    cell.value = given ? String(state.givens[i]) : "";
    cell.classList.toggle("given", given);
    cell.classList.remove("changed", "wrong");
    cell.style.setProperty("--tint", "0%");
  }
}

function drawGrid(grid, changed, confidence) {
  const changedSet = new Set(changed || []);
  for (let i = 0; i < CELLS; i++) {
    if (state.givens[i]) continue;
    const cell = cellAt(i);
    const ch = grid[i];
    cell.value = /[1-9]/.test(ch) ? ch : "";
    cell.classList.toggle("changed", changedSet.has(i));
    cell.classList.toggle("wrong", !!state.solution && cell.value !== state.solution[i]);
    cell.style.setProperty("--tint", tint(confidence ? confidence[i] : 1));
  }
}

// The model is rarely below 0.6 on a cell, so the shading spans 1.0 (none) to 0.6 (full).
function tint(confidence) {
  return `${Math.round(Math.min(1, Math.max(0, (1 - confidence) / 0.4)) * 75)}%`;
}

function setReadOnly(readOnly) {
  for (let i = 0; i < CELLS; i++) cellAt(i).readOnly = readOnly;
  $("solve").disabled = readOnly;
  $("stop").disabled = !readOnly;
}

// ------------------------------------------------------------------------------ status

function setBadge(kind, text) {
  const badge = $("badge");
  badge.className = `badge ${kind}`;
  badge.dataset.state = kind;
  badge.textContent = text;
}

function setStats(step, maxSteps, changed, confidence, qHalt) {
  $("step").textContent = step === null ? "–" : `${step} / ${maxSteps}`;
  $("step").dataset.step = step === null ? "" : String(step);
  $("changed").textContent = changed === null ? "–" : String(changed);
  $("confidence").textContent = confidence === null ? "–" : confidence.toFixed(3);
  $("q-halt").textContent = qHalt === null ? "–" : qHalt.toFixed(3);
  $("q-halt-bar").style.width = qHalt === null ? "0" : `${Math.round(qHalt * 100)}%`;
}

function resetRun() {
  state.run += 1;
  if (state.controller) state.controller.abort();
  state.controller = null;
  state.chain = Promise.resolve();
  setReadOnly(false);
  setStats(null, 0, null, null, null);
  setBadge("idle", "ready");
  $("summary").textContent = "";
}

function showError(problem) {
  const box = $("error");
  const lines = [problem.detail || problem.title || "request failed"];
  for (const entry of problem.errors || []) {
    if (entry.msg && !lines[0].includes(entry.msg)) lines.push(`• ${entry.msg}`);
  }
  box.textContent = lines.join("\n");
  box.hidden = false;
  if (problem.status === 401) $("key-box").open = true;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// ------------------------------------------------------------------------------ the API

function headers(extra) {
  const result = { ...extra };
  const key = localStorage.getItem(KEY_STORE);
  if (key) result["X-API-Key"] = key;
  return result;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch (_) {
    return { status: response.status, detail: `HTTP ${response.status} ${response.statusText}` };
  }
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers({ Accept: "application/json" }) });
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

// Calls onEvent(name, data) for each server-sent event of a fetch response body.
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function delay(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// Queues an event for drawing; steps wait `pace` ms so a person can follow them.
function replay(run, name, data) {
  const pace = Number($("pace").value);
  state.chain = state.chain.then(async () => {
    if (run !== state.run) return;
    draw(name, data);
    if (name === "solve.step" && pace > 0) await delay(pace);
  });
}

function draw(name, data) {
  if (name === "solve.accepted") {
    setBadge("running", "solving…");
    setStats(0, data.max_steps, null, null, null);
  } else if (name === "solve.step") {
    drawGrid(data.grid, data.changed_cells, data.cell_confidence);
    setStats(data.step, data.max_steps, data.changed, data.confidence, data.q_halt);
    setBadge("running", data.valid ? "solving… (answer verifies)" : "solving…");
  } else if (name === "solve.completed") {
    finish(data);
  } else if (name === "solve.failed") {
    showError(data);
    setBadge("failed", "failed");
    setReadOnly(false);
  } else if (name === "solve.cancelled") {
    setBadge("failed", "cancelled");
    setReadOnly(false);
  }
}

function finish(result) {
  drawGrid(result.solution, [], null);
  const steps = $("step").dataset.step;
  const maxSteps = ($("step").textContent.split("/")[1] || "").trim();
  $("step").textContent = `${steps || result.steps_used} / ${maxSteps || result.steps_used}`;
  if (result.valid) {
    setBadge("verified", "✓ verified");
  } else {
    setBadge("unsolved", "✗ unsolved");
  }
  const unit = result.steps_used === 1 ? "step" : "steps";
  const how = result.halted_early ? ", halted early" : "";
  $("summary").textContent = result.valid
    ? `Solved and verified in ${result.steps_used} ${unit}${how}; `
      + `${Math.round(result.timing.total_ms)} ms on the server.`
    : `The answer after ${result.steps_used} ${unit} breaks the rules or misses cells. `
      + "Try halting “never”, more attempts, or an easier puzzle.";
  setReadOnly(false);
}

async function solve(event) {
  event.preventDefault();
  clearError();
  setPuzzle($("puzzle-text").value, state.solution);
  const run = state.run;
  const controller = new AbortController();
  state.controller = controller;
  setReadOnly(true);
  setBadge("running", "sending…");
  const body = {
    puzzle: $("puzzle-text").value,
    stream: true,
    halting: $("halting").value,
    max_steps: Number($("max-steps").value),
    attempts: Number($("attempts").value),
  };
  try {
    const response = await fetch("/v1/solve/sudoku", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const problem = await problemOf(response);
      if (run === state.run) { showError(problem); resetRun(); }
      return;
    }
    await readEvents(response.body, (name, data) => replay(run, name, data));
  } catch (error) {
    if (error.name !== "AbortError" && run === state.run) {
      showError({ detail: `connection failed: ${error.message}` });
      resetRun();
    }
  }
}

// ------------------------------------------------------------------------------ examples

async function loadExamples() {
  try {
    const examples = await getJson("/v1/examples/sudoku");
    state.examples = examples.data;
  } catch (problem) {
    if (problem.status === 401) showError(problem);
    return;
  }
  const select = $("example");
  select.length = 1;
  state.examples.forEach((example, i) => select.add(new Option(example.name, String(i))));
}

async function generate() {
  clearError();
  const button = $("generate");
  button.disabled = true;
  try {
    const example = await getJson(`/v1/examples/sudoku?difficulty=${$("difficulty").value}`);
    setPuzzle(example.puzzle, example.solution);
    $("summary").textContent = `A new ${example.difficulty} puzzle: ${example.givens} givens.`;
  } catch (problem) {
    showError(problem);
  } finally {
    button.disabled = false;
  }
}

function init() {
  buildGrid();
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    clearError();
    loadExamples();
  });
  $("puzzle-text").addEventListener("input", () => {
    // keepText: rewriting the box while someone types would move their caret.
    setPuzzle($("puzzle-text").value, null, true);
    $("example").value = "";
  });
  $("example").addEventListener("change", () => {
    const example = state.examples[Number($("example").value)];
    if (example) { clearError(); setPuzzle(example.puzzle, example.solution); }
  });
  $("generate").addEventListener("click", generate);
  $("form").addEventListener("submit", solve);
  $("stop").addEventListener("click", () => { resetRun(); setBadge("failed", "stopped"); });
  $("clear").addEventListener("click", () => { clearError(); setPuzzle("", null); });
  resetRun();
  loadExamples().then(() => {
    if (!puzzleString().replace(/\./g, "") && state.examples.length) {
      $("example").value = "0";
      setPuzzle(state.examples[0].puzzle, state.examples[0].solution);
    }
  });
}

document.addEventListener("DOMContentLoaded", init);
