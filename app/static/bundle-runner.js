// Runs a model's portable bundle in this page: the manifest and step graph from
// GET /v1/models/{id}/bundle (training/bundle.py), the graph on onnxruntime-web's WebAssembly
// build (vendored in /static/ort/, one thread, so no cross-origin isolation is needed). Each
// supervision step is read by the manifest's rules exactly as the reference loop
// (training/bundle_solve.py) and the server's engine read it, and reported with the fields of
// the server's solve.step event, so the viewer draws a browser run and a server stream alike.
// Once loaded, solving needs no network.
"use strict";

const BundleRunner = (() => {
  const FORMAT = "trm-bundle/1";
  const READ = ["y_next", "z_next", "logits", "halt_logits"];
  let loaded = null; // { modelId, manifest, session, graphBytes }

  async function fetchOk(url, headers) {
    const response = await fetch(url, { headers });
    if (!response.ok) {
      let problem;
      try { problem = await response.json(); } catch (_) { problem = {}; }
      throw { status: response.status, ...problem,
              detail: problem.detail || `HTTP ${response.status} for ${url}` };
    }
    return response;
  }

  // The graph's sha256 against the manifest's. crypto.subtle exists only in secure contexts
  // (https, localhost); elsewhere the graph is taken as served.
  async function checkDigest(bytes, expected) {
    if (!(window.crypto && crypto.subtle)) return;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== expected) throw { detail: `bundle graph sha256 ${hex} is not the manifest's` };
  }

  // Fetches the model's bundle and starts the runtime; later calls for the same model return at
  // once. Returns what was loaded.
  async function load(modelId, headers) {
    if (loaded && loaded.modelId === modelId) return loaded;
    const base = `/v1/models/${encodeURIComponent(modelId)}/bundle`;
    const manifest = await (await fetchOk(base, headers)).json();
    if (manifest.format !== FORMAT) throw { detail: `not a ${FORMAT} bundle` };
    const file = manifest.graph.file;
    const bytes = new Uint8Array(await (await fetchOk(`${base}/${file}`, headers)).arrayBuffer());
    await checkDigest(bytes, manifest.files[file].sha256);
    ort.env.wasm.wasmPaths = "/static/ort/";
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    loaded = { modelId, manifest, session, graphBytes: bytes.length };
    return loaded;
  }

  // ---------------------------------------------------------------- the task's rules (manifest)

  function cellName(task, p) {
    const columns = task.grid_shape[1];
    return `r${Math.floor(p / columns) + 1}c${(p % columns) + 1}`;
  }

  // A puzzle string as cells: digits, "." or "0" a blank, whitespace and |-+ ignored.
  function parse(text) {
    const task = loaded.manifest.task;
    const chars = Array.from(text).filter((ch) => !/[\s|+\-]/.test(ch));
    if (chars.length !== task.seq_len) {
      throw { detail: `expected ${task.seq_len} cells, got ${chars.length}` };
    }
    const bad = chars.find((ch) => !/[0-9.]/.test(ch));
    if (bad !== undefined) {
      throw { detail: `bad character '${bad}'; use digits and '.' for a blank` };
    }
    const cells = chars.map((ch) => (ch === "." ? task.blank : Number(ch)));
    check(cells);
    return cells;
  }

  // Refuses a value out of range and a given repeated within a unit, as the server does.
  function check(cells) {
    const { task, tokens } = loaded.manifest;
    if (cells.some((v) => v < 0 || v >= tokens.token_of_cell.length)) {
      throw { detail: `cells must be 0..${tokens.token_of_cell.length - 1}` };
    }
    task.verify.units.forEach((unit, u) => {
      const seen = new Map();
      for (const p of unit) {
        const v = cells[p];
        if (v !== task.blank && seen.has(v)) {
          throw { detail: `${v} appears twice in ${task.verify.unit_names[u]}: `
                          + `${cellName(task, seen.get(v))} and ${cellName(task, p)}` };
        }
        seen.set(v, p);
      }
    });
  }

  function keepGivens(task, puzzle, answer) {
    if (task.keep_givens !== "non-blank") return answer;
    return answer.map((v, i) => (puzzle[i] !== task.blank ? puzzle[i] : v));
  }

  // The answer keeps the givens and every unit holds each value exactly once.
  function verify(task, puzzle, answer) {
    if (puzzle.some((v, i) => v !== task.blank && answer[i] !== v)) return false;
    const values = [...task.verify.values].sort((a, b) => a - b).join(",");
    return task.verify.units.every(
      (unit) => unit.map((p) => answer[p]).sort((a, b) => a - b).join(",") === values);
  }

  // Cells that break a rule: not a value, a changed given, or a value repeated in a unit,
  // as 0-based [row, column] pairs (the server's `conflicts`).
  function conflicts(task, puzzle, answer) {
    const values = new Set(task.verify.values);
    const invalid = answer.map(
      (v, i) => !values.has(v) || (puzzle[i] !== task.blank && puzzle[i] !== v));
    const clash = answer.map(() => false);
    for (const unit of task.verify.units) {
      const count = new Map();
      for (const p of unit) if (!invalid[p]) count.set(answer[p], (count.get(answer[p]) || 0) + 1);
      for (const p of unit) if (!invalid[p] && count.get(answer[p]) > 1) clash[p] = true;
    }
    const columns = task.grid_shape[1];
    return answer.flatMap(
      (_, i) => (invalid[i] || clash[i] ? [[Math.floor(i / columns), i % columns]] : []));
  }

  const format = (task, cells) =>
    cells.map((v) => (v === task.blank ? task.blank_char : String(v))).join("");
  const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

  // ------------------------------------------------------------------------------- the loop

  // One step's reading from its logits (seq_len x vocab, flat): the argmax answer (first on
  // ties) with the givens kept, each cell's top softmax probability, the halting figures.
  function read(step, puzzle, logits, haltLogit, previous) {
    const { task, tokens } = loaded.manifest;
    const vocab = task.vocab_size;
    const raw = [], cellConfidence = [];
    for (let i = 0; i < task.seq_len; i++) {
      const cell = logits.subarray(i * vocab, (i + 1) * vocab);
      let best = 0;
      for (let k = 1; k < vocab; k++) if (cell[k] > cell[best]) best = k;
      let sum = 0;
      for (let k = 0; k < vocab; k++) sum += Math.exp(cell[k] - cell[best]);
      raw.push(tokens.cell_of_token[best]);
      cellConfidence.push(1 / sum);
    }
    const answer = keepGivens(task, puzzle, raw);
    const blanks = puzzle.map((v) => v === task.blank);
    const fill = blanks.some(Boolean) ? blanks : blanks.map(() => true);
    const filled = cellConfidence.filter((_, i) => fill[i]);
    const shown = previous || puzzle;
    return {
      step, answer, cellConfidence, haltLogit,
      changedCells: answer.flatMap((v, i) => (v !== shown[i] ? [i] : [])),
      confidence: filled.reduce((a, b) => a + b, 0) / filled.length,
      qHalt: 1 / (1 + Math.exp(-haltLogit)),
      valid: verify(task, puzzle, answer),
    };
  }

  // The manifest's halting rule (the engine's): max_steps, or with "auto" a verified answer
  // whose halt logit is above the threshold or that equals the previous step's.
  function stops(reading, previous, halting, maxSteps) {
    if (reading.step >= maxSteps) return true;
    if (halting === "never") return false;
    const rule = loaded.manifest.halting.auto;
    const halted = reading.haltLogit > rule.halt_logit_above;
    if (!rule.needs_verified) return halted;
    const unchanged = rule.or_unchanged && previous !== null
      && reading.answer.every((v, i) => v === previous[i]);
    return reading.valid && (halted || unchanged);
  }

  function carry(vector, length, hidden) {
    const data = new Float32Array(length * hidden);
    for (let i = 0; i < length; i++) data.set(vector, i * hidden);
    return new ort.Tensor("float32", data, [1, length, hidden]);
  }

  function stepEvent(task, reading, maxSteps, elapsedMs) {
    return {
      step: reading.step, max_steps: maxSteps, grid: format(task, reading.answer),
      changed: reading.changedCells.length, changed_cells: reading.changedCells,
      confidence: round(reading.confidence, 4),
      cell_confidence: reading.cellConfidence.map((c) => round(c, 3)),
      q_halt: round(reading.qHalt, 4), valid: reading.valid, attempt: 0,
      elapsed_ms: round(elapsedMs, 2),
    };
  }

  // The server's solve.completed body for this run; `ran_in` says where it ran.
  function resultBody(id, puzzle, last, maxSteps, computeMs, stepMs) {
    const { task, model } = loaded.manifest;
    const solved = last.valid;
    const body = {
      id, object: "solve.result", task: task.name, model: model.id,
      status: solved ? "solved" : "unsolved", valid: solved, unverified: !solved,
      [solved ? "solution" : "answer"]: format(task, last.answer),
      steps_used: last.step, halted_early: last.step < maxSteps,
    };
    if (!solved) body.conflicts = conflicts(task, puzzle, last.answer);
    return {
      ...body, raw_confidence: round(last.confidence, 4), q_halt: round(last.qHalt, 4),
      attempts: 1, attempt: 0, cached: false, ran_in: "browser",
      timing: { queue_ms: 0, compute_ms: round(computeMs, 2), total_ms: round(computeMs, 2),
                step_ms: stepMs.map((ms) => round(ms, 2)) },
    };
  }

  // Solves `puzzle` (cells), calling emit(name, data) with solve.accepted, one solve.step per
  // supervision step and solve.completed, as the server's stream does; stops early (without a
  // result) once cancelled() is true.
  async function solve(puzzle, options, emit, cancelled) {
    check(puzzle);
    const { manifest, session } = loaded;
    const { task, tokens } = manifest;
    const halting = options.halting || manifest.halting.default;
    const limit = manifest.halting.max_steps;
    const maxSteps = Math.min(options.maxSteps || limit, limit);
    const [, length, hidden] = manifest.graph.inputs.y.shape;
    const id = `local_${Date.now().toString(36)}`;
    const feeds = {
      y: carry(manifest.initial_carry.y, length, hidden),
      z: carry(manifest.initial_carry.z, length, hidden),
      tokens: new ort.Tensor(
        "int64", BigInt64Array.from(puzzle, (v) => BigInt(tokens.token_of_cell[v])),
        [1, task.seq_len]),
    };
    emit("solve.accepted",
         { id, task: task.name, model: manifest.model.id, queue_position: 0, max_steps: maxSteps });
    const started = performance.now();
    const stepMs = [];
    let previous = null, reading = null;
    for (let step = 1; step <= maxSteps; step++) {
      if (cancelled()) return;
      const before = performance.now();
      const out = await session.run(feeds, READ);
      stepMs.push(performance.now() - before);
      feeds.y = out.y_next;
      feeds.z = out.z_next;
      reading = read(step, puzzle, out.logits.data, out.halt_logits.data[0], previous);
      emit("solve.step", stepEvent(task, reading, maxSteps, performance.now() - started));
      if (stops(reading, previous, halting, maxSteps)) break;
      previous = reading.answer;
    }
    if (cancelled()) return;
    const computeMs = performance.now() - started;
    emit("solve.completed", resultBody(id, puzzle, reading, maxSteps, computeMs, stepMs));
  }

  return { load, parse, solve, loaded: () => loaded };
})();
