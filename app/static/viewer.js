// The viewer: picks a task the service serves (GET /v1/models), loads examples and generated
// puzzles, and streams a solve (POST /v1/solve/{task} with "stream": true, read with fetch so an
// API key can ride in a header, which EventSource cannot send), replaying each supervision step
// at a chosen pace. With "run in this browser" on, the same steps come from the model's bundle
// run here instead (BundleRunner, bundle-runner.js) and are replayed the same way. Drawing is the
// board's job: SudokuBoard (sudoku-board.js), MazeBoard (maze-board.js) and, for each served task
// defined by data, a board makeGridBoard (grid-board.js) builds from the model's `task_spec` offer
// the same methods.
"use strict";

const KEY_STORE = "trm-api-key";
const BOARDS = { sudoku: SudokuBoard, maze: MazeBoard };
const $ = (id) => document.getElementById(id);

const state = {
  task: "sudoku",
  models: [],                       // GET /v1/models data
  solution: null,                   // known solution of the example shown
  controller: null,                 // AbortController of the running stream
  run: 0,                           // increments per solve so stale replays stop drawing
  chain: Promise.resolve(),         // the replay queue: one step drawn after another
  examples: [],
  local: false,                     // solve in this browser; true once its bundle is loaded
};

const board = () => BOARDS[state.task];

// ------------------------------------------------------------------------------ the puzzle

function setPuzzle(text, solution, keepText = false) {
  const cleaned = board().setPuzzle(text, solution);
  state.solution = solution || null;
  if (!keepText) $("puzzle-text").value = cleaned;
  resetRun();
}

// A board edit (Sudoku cells): the text box follows and the example no longer applies.
function onBoardEdit(text) {
  state.solution = null;
  resetRun();
  $("puzzle-text").value = text;
  $("example").value = "";
}

function setReadOnly(readOnly) {
  board().setReadOnly(readOnly);
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
  $("confidence-label").textContent = "Raw confidence";
  $("path-stat").textContent = "–";
  setBadge("idle", "ready");
  $("summary").textContent = "";
}

function showError(problem) {
  const box = $("error");
  const lines = [problem.detail || problem.title || "request failed"];
  for (const entry of problem.errors || []) {
    if (entry.msg && !lines[0].includes(entry.msg)) lines.push(`• ${entry.msg}`);
    board().markCells(entry.cells);
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
    board().drawStep(data);
    setStats(data.step, data.max_steps, data.changed, data.confidence, data.q_halt);
    $("path-stat").textContent = board().stepStat(data) || "–";
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
  board().drawResult(result);
  const steps = $("step").dataset.step;
  const maxSteps = ($("step").textContent.split("/")[1] || "").trim();
  $("step").textContent = `${steps || result.steps_used} / ${maxSteps || result.steps_used}`;
  if (result.status === "answered") return finishAnswered(result);
  if (result.valid) {
    setBadge("verified", "✓ verified");
  } else {
    setBadge("unsolved", "✗ unverified answer");
  }
  showConfidence(result);
  const unit = result.steps_used === 1 ? "step" : "steps";
  const how = result.halted_early ? ", halted early" : "";
  const note = board().resultNote(result);
  const here = result.ran_in === "browser";
  const where = here ? "in this browser" : "on the server";
  $("summary").textContent = result.valid
    ? `Solved and verified in ${result.steps_used} ${unit}${how}; `
      + `${Math.round(result.timing.total_ms)} ms ${where}.${note}`
    : `Unsolved: the answer after ${result.steps_used} ${unit}${here ? " in this browser" : ""} `
      + `is not verified; it breaks the rules or misses cells.${note} ${nextTry(result)}`;
  setReadOnly(false);
}

// A task with no rules check answers without a verdict: the note says the answer is unverified.
function finishAnswered(result) {
  setBadge("answered", "answered · unverified");
  showConfidence(result);
  const unit = result.steps_used === 1 ? "step" : "steps";
  const how = result.halted_early ? ", halted early" : "";
  const where = result.ran_in === "browser" ? "in this browser" : "on the server";
  $("summary").textContent = `Answered in ${result.steps_used} ${unit}${how}; `
    + `${Math.round(result.timing.total_ms)} ms ${where}.${board().resultNote(result)}`;
  setReadOnly(false);
}

// What might do better than the run that just ended; "halting never" only when it stopped early.
// A run in this browser is the single pass: attempts and search are the server's.
function nextTry(result) {
  const more = result.ran_in === "browser" ? "more attempts on the server" : "more attempts";
  const options = [more, "an easier puzzle"];
  if (result.halted_early) options.unshift("halting “never”");
  return `Try ${options.slice(0, -1).join(", ")} or ${options.at(-1)}.`;
}

// Steps show the model's raw confidence; a verified result of a calibrated model shows its
// measured confidence instead (the share of such answers that verified on held-out puzzles).
function showConfidence(result) {
  const calibrated = typeof result.confidence === "number";
  $("confidence-label").textContent = calibrated ? "Confidence (calibrated)" : "Raw confidence";
  const value = calibrated ? result.confidence : result.raw_confidence;
  $("confidence").textContent = typeof value === "number" ? value.toFixed(3) : "–";
}

async function solve(event) {
  event.preventDefault();
  clearError();
  setPuzzle($("puzzle-text").value, state.solution, true);
  const run = state.run;
  if (state.local) return solveHere(run);
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
    const response = await fetch(`/v1/solve/${state.task}`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const problem = await problemOf(response);
      if (run === state.run) { resetRun(); showError(problem); }
      return;
    }
    await readEvents(response.body, (name, data) => replay(run, name, data));
  } catch (error) {
    if (error.name !== "AbortError" && run === state.run) {
      resetRun();
      showError({ detail: `connection failed: ${error.message}` });
    }
  }
}

// ------------------------------------------------------------------------- in this browser

// Solves with the loaded bundle: no request leaves the page.
async function solveHere(run) {
  let puzzle;
  try {
    puzzle = BundleRunner.parse($("puzzle-text").value);
  } catch (problem) {
    showError(problem);
    return;
  }
  setReadOnly(true);
  const options = { halting: $("halting").value, maxSteps: Number($("max-steps").value) };
  try {
    await BundleRunner.solve(puzzle, options, (name, data) => replay(run, name, data),
                             () => run !== state.run);
  } catch (error) {
    if (run === state.run) {
      resetRun();
      showError({ detail: `running the model here failed: ${error.message || error.detail}` });
    }
  }
}

// The switch: on, fetch the default model's bundle and start the runtime (once per model);
// attempts stay 1, as the bundle runs the single pass.
async function switchLocal() {
  clearError();
  resetRun();
  state.local = false;
  const on = $("run-local").checked;
  $("attempts").disabled = on;
  document.body.dataset.local = on ? "loading" : "off";
  $("footer-where").hidden = !on;
  if (!on) { $("local-status").textContent = ""; return; }
  const models = state.models.filter((m) => m.task === state.task);
  const model = models.find((m) => m.default) || models[0];
  $("local-status").textContent = "loading the model…";
  try {
    if (!model) throw { detail: `no ${state.task} model to load` };
    const loaded = await BundleRunner.load(model.id, headers());
    if (!$("run-local").checked) return;
    $("attempts").value = "1";
    state.local = true;
    document.body.dataset.local = "ready";
    const kilobytes = Math.round(loaded.graphBytes / 1024);
    $("local-status").textContent = `${loaded.modelId}, ${kilobytes} kB, `
      + `onnxruntime-web ${ort.env.versions.web} (WebAssembly)`;
  } catch (problem) {
    $("run-local").checked = false;
    $("attempts").disabled = false;
    document.body.dataset.local = "off";
    $("local-status").textContent = "";
    showError(problem);
  }
}

// ------------------------------------------------------------------------------ tasks

// The tasks the service has a model for (and this page can draw), in the task picker; a task
// defined by data gets a board built from its spec.
async function loadModels() {
  state.models = (await getJson("/v1/models")).data;
  for (const model of state.models) {
    if (model.task_spec) BOARDS[model.task] = makeGridBoard(model.task_spec);
  }
  const served = [...new Set(state.models.map((m) => m.task))].filter((t) => t in BOARDS);
  const select = $("task");
  const wanted = new URLSearchParams(location.search).get("task") || select.value;
  select.length = 0;
  for (const task of served.length ? served : ["sudoku"]) {
    select.add(new Option(BOARDS[task].title, task));
  }
  select.value = served.includes(wanted) ? wanted : select.options[0].value;
  showTask(select.value);
}

// Switches the page to `task`: board, labels, the default model's step limit.
function showTask(task) {
  state.task = task;
  const current = board();
  if (current.kind === "defined") current.build();
  document.body.dataset.task = task;
  document.body.dataset.board = current.kind || task;
  // A data-defined task has no rules check: auto halting follows the model's halting head.
  $("halting").options[0].textContent = current.kind === "defined"
    ? "auto: stop when the halting head says done" : "auto: stop on a verified answer";
  document.title = `trm-serve · watch a Tiny Recursive Model solve ${current.title}`;
  $("task-title").textContent = current.title;
  $("footer-task").textContent = task;
  $("puzzle-hint").textContent = current.hint;
  $("puzzle-text").rows = current.textRows;
  $("puzzle-text").wrap = current.textWrap || (task === "maze" ? "off" : "soft");
  $("generate-row").hidden = current.generates === false;
  const models = state.models.filter((m) => m.task === task);
  const model = models.find((m) => m.default) || models[0];
  if (model) {
    $("max-steps").max = String(model.max_steps);
    $("max-steps").value = String(model.max_steps);
  }
  $("example").length = 1;
  state.examples = [];
  if ($("run-local").checked) { $("run-local").checked = false; switchLocal(); }
  setPuzzle("", null);
}

async function changeTask() {
  clearError();
  showTask($("task").value);
  await loadExamples();
  showFirstExample();
}

// ------------------------------------------------------------------------------ examples

async function loadExamples() {
  const task = state.task;
  let examples;
  try {
    examples = await getJson(`/v1/examples/${task}`);
  } catch (problem) {
    if (problem.status === 401) showError(problem);
    return;
  }
  if (task !== state.task) return;
  state.examples = examples.data;
  const select = $("example");
  select.length = 1;
  state.examples.forEach((example, i) => select.add(new Option(example.name, String(i))));
}

function showFirstExample() {
  if (board().isEmpty() && state.examples.length) {
    $("example").value = "0";
    setPuzzle(state.examples[0].puzzle, state.examples[0].solution);
  }
}

async function generate() {
  clearError();
  const button = $("generate");
  button.disabled = true;
  try {
    const query = `difficulty=${$("difficulty").value}`;
    const example = await getJson(`/v1/examples/${state.task}/generate?${query}`);
    setPuzzle(example.puzzle, example.solution);
    $("example").value = "";
    $("summary").textContent = board().generatedNote(example);
  } catch (problem) {
    showError(problem);
  } finally {
    button.disabled = false;
  }
}

async function loadService() {
  try {
    await loadModels();
  } catch (problem) {
    if (problem.status === 401) showError(problem);
    return;
  }
  await loadExamples();
  showFirstExample();
}

function init() {
  SudokuBoard.build(onBoardEdit);
  MazeBoard.build();
  $("api-key").value = localStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    clearError();
    loadService();
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
  $("task").addEventListener("change", changeTask);
  $("run-local").addEventListener("change", switchLocal);
  $("generate").addEventListener("click", generate);
  $("form").addEventListener("submit", solve);
  $("stop").addEventListener("click", () => { resetRun(); setBadge("failed", "stopped"); });
  $("clear").addEventListener("click", () => { clearError(); setPuzzle("", null); });
  showTask(state.task);
  loadService();
}

document.addEventListener("DOMContentLoaded", init);
