/* Passage viewer: one page, vanilla JS (ES2020), no framework, no build step.
 *
 * Sections: data sources (HTTP API or the static report's <script> files) -> layouts (which
 * value goes to which canvas pixel: render's rules, answered by the server, expanded here) ->
 * painting (colormap LUTs) -> views (pattern, analysis, model) -> controls, URL hash, live
 * polling.
 */
"use strict";
(() => {
  const P = (window.PASSAGE = window.PASSAGE || {});
  const STATIC = window.PASSAGE_STATIC || null;
  const CELL_PX = 240; // the longest side of a cell's canvas on screen
  const PREFETCH_DELAY_MS = 120;
  const PAD_RGB = [236, 239, 243]; // mosaic gaps and vector padding: not values
  const BAD_RGB = [255, 0, 255]; // NaN and infinities
  const CACHE_ENTRIES = 600;
  const $ = (sel) => document.querySelector(sel);

  // Where a pattern view's milliseconds go (the bench reads PASSAGE.timing): phases added up
  // per drawing, from the change that asked for it to "ready".
  const now = () => performance.now();
  let timing = null;
  function tick(phase, since) {
    const t = now();
    if (timing) timing[phase] = (timing[phase] || 0) + (t - since);
    return t;
  }

  // ------------------------------------------------------------------ data sources
  class ApiError extends Error {
    constructor(status, message, damaged) {
      super(message);
      this.status = status;
      this.damaged = damaged || null;
    }
  }

  const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));

  async function httpJson(path) {
    const res = await fetch(path, { cache: "no-store" });
    const body = await res.json().catch(() => ({ error: res.statusText }));
    if (!res.ok) throw new ApiError(res.status, body.error || res.statusText, body.damaged);
    return body;
  }

  async function httpTensor(path) {
    const res = await fetch(path);
    if (!res.ok) {
      const body = await res.json().catch(() => ({ error: res.statusText }));
      if (res.status === 422) return { damaged: body.damaged || body.error };
      throw new ApiError(res.status, body.error || res.statusText);
    }
    const h = res.headers;
    const shapeText = h.get("X-Shape") || "";
    return {
      shape: shapeText ? shapeText.split(",").map(Number) : [],
      values: new Float32Array(await res.arrayBuffer()),
      min: num(h.get("X-Min")),
      max: num(h.get("X-Max")),
      layerMin: num(h.get("X-Layer-Min")),
      layerMax: num(h.get("X-Layer-Max")),
    };
  }

  // Static report: data/<key>.js calls PASSAGE.put(key, payload); never fetch (file://).
  const waiting = new Map();
  P.put = (key, payload) => {
    const w = waiting.get(key);
    if (w) {
      waiting.delete(key);
      w.resolve(payload);
    }
  };

  function staticLoad(key) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      waiting.set(key, { resolve });
      script.src = "data/" + key.split("/").map(encodeURIComponent).join("/") + ".js";
      script.onload = () => {
        script.remove();
        if (waiting.has(key)) {
          waiting.delete(key);
          reject(new ApiError(404, `data/${key}.js did not call PASSAGE.put`));
        }
      };
      script.onerror = () => {
        script.remove();
        waiting.delete(key);
        reject(new ApiError(404, `not in this report: ${key}`));
      };
      document.head.appendChild(script);
    });
  }

  function decodeStatic(payload) {
    if (payload.damaged) return { damaged: payload.damaged };
    const bytes = Uint8Array.from(atob(payload.b64), (c) => c.charCodeAt(0));
    return {
      shape: payload.shape,
      values: new Float32Array(bytes.buffer),
      min: num(payload.min),
      max: num(payload.max),
      layerMin: num(payload.layerMin),
      layerMax: num(payload.layerMax),
    };
  }

  const epochPart = (epoch) => (epoch === null ? "b" : "e" + epoch);
  const q = encodeURIComponent;

  const source = STATIC
    ? {
        runs: async () => ({ runs: STATIC.runs }),
        colormaps: async () => STATIC.colormaps,
        layer: async (run, layer, p, epoch) =>
          decodeStatic(await staticLoad(`r${run.id}/${layer.dir}/${epochPart(epoch)}/${p}`)),
        input: async (run, name, p) => decodeStatic(await staticLoad(`r${run.id}/inputs/${name}/${p}`)),
        metrics: (run) => staticLoad(`r${run.id}/metrics`),
        analysis: (run, layer) => staticLoad(`r${run.id}/analysis/${layer.dir}`),
        cka: (run) => staticLoad(`r${run.id}/cka`),
        info: (run) => staticLoad(`r${run.id}/info`),
        modelUrl: (run) => `data/r${run.id}/model.png`,
        layout: async (shape) => {
          const key = shape.join(",");
          if (!Object.prototype.hasOwnProperty.call(STATIC.layouts || {}, key))
            throw new ApiError(404, `not in this report: the layout of shape (${key})`);
          return STATIC.layouts[key];
        },
      }
    : {
        runs: () => httpJson("api/runs"),
        colormaps: () => httpJson("api/colormaps"),
        layer: (run, layer, p, epoch) =>
          httpTensor(
            `api/run/${run.id}/data?layer=${q(layer.name)}&pattern=${p}` +
              (epoch === null ? "" : `&epoch=${epoch}`)
          ),
        input: (run, name, p) => httpTensor(`api/run/${run.id}/input?name=${q(name)}&pattern=${p}`),
        metrics: (run) => httpJson(`api/run/${run.id}/metrics`),
        analysis: (run, layer, epoch) =>
          httpJson(
            `api/run/${run.id}/analysis?layer=${q(layer.name)}` +
              (epoch === null ? "" : `&epoch=${epoch}`)
          ),
        cka: (run) => httpJson(`api/run/${run.id}/cka`),
        info: (run) => httpJson(`api/run/${run.id}/info`),
        modelUrl: (run) => `api/run/${run.id}/model.png?v=${q(run.version)}`,
        layout: (shape) => httpJson(`api/layout?shape=${shape.join(",")}`),
      };

  // A small LRU of tensor promises: switching back to a pattern draws at once.
  const cache = new Map();
  function cached(key, load) {
    if (cache.has(key)) {
      const hit = cache.get(key);
      cache.delete(key);
      cache.set(key, hit);
      return hit;
    }
    const promise = load();
    promise.catch(() => cache.delete(key));
    cache.set(key, promise);
    while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value);
    return promise;
  }

  // The pattern view asks for all of a run's cells at once (`together`): one answer of the
  // server (api/run/N/pattern) fills the cache entries of every input and layer of a pattern.
  const layerTensor = (run, layer, p, epoch, together = false) =>
    cached(`${run.id}|L|${layer.name}|${p}|${epoch}`, () =>
      together && !STATIC
        ? fromBundle(run, "layer", layer.name, p, epoch, () => source.layer(run, layer, p, epoch))
        : source.layer(run, layer, p, epoch)
    );
  const inputTensor = (run, name, p, together = false) =>
    cached(`${run.id}|I|${name}|${p}`, () =>
      together && !STATIC
        ? fromBundle(run, "input", name, p, epochFor(run), () => source.input(run, name, p))
        : source.input(run, name, p)
    );

  const bundles = new Map(); // "<run>|<pattern>|<epoch>" -> promise of its parts, while asked
  function fromBundle(run, kind, name, p, epoch, alone) {
    const key = `${run.id}|${p}|${epoch}`;
    if (!bundles.has(key)) {
      // the layouts come along while a shape of this run has none yet (the first view)
      const known = (shape) => !shape.every(Number.isInteger) || layouts.has(shape.join(","));
      const withLayouts = !run.layers.every((l) => known(l.shape));
      const promise = httpBundle(
        `api/run/${run.id}/pattern?pattern=${p}` +
          (epoch === null ? "" : `&epoch=${epoch}`) +
          (withLayouts ? "&layouts=1" : "")
      );
      bundles.set(key, promise);
      const done = () => bundles.delete(key);
      promise.then(done, done);
    }
    return bundles.get(key).then((parts) => {
      const part = parts.get(`${kind}|${name}`);
      if (!part) return alone(); // a cell the answer does not know (a run that changed since)
      if (part.error) throw new ApiError(404, part.error);
      return part;
    });
  }

  /** api/run/N/pattern: [uint32 n][n bytes of JSON head][float32 values] (pattern_api.py). */
  async function httpBundle(path) {
    const res = await fetch(path);
    if (!res.ok) {
      const body = await res.json().catch(() => ({ error: res.statusText }));
      throw new ApiError(res.status, body.error || res.statusText, body.damaged);
    }
    const buf = await res.arrayBuffer();
    const n = new DataView(buf).getUint32(0, true);
    const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    const parts = new Map();
    for (const part of head.parts) {
      if (part.layout && !layouts.has(part.shape.join(",")))
        layouts.set(part.shape.join(","), Promise.resolve(expand(part.layout)));
      let r;
      if (part.damaged) r = { damaged: part.damaged };
      else if (part.error) r = { error: part.error };
      else
        r = {
          shape: part.shape,
          values: new Float32Array(buf, 4 + n + part.offset, part.count),
          min: num(part.min),
          max: num(part.max),
          layerMin: num(part.layerMin),
          layerMax: num(part.layerMax),
        };
      parts.set(`${part.kind}|${part.name}`, r);
    }
    return parts;
  }

  // ------------------------------------------------------------------ layouts (from the server)
  // Which value each pixel shows is render's rule, answered by the server for a shape
  // (`api/layout?shape=3,4,70`; the report ships the same answers): the image size, the
  // title's shape label and note, and blocks [row, col, height, width, offset, rowStep,
  // colStep]: pixel (row + y, col + x) shows value offset + y * rowStep + x * colStep of the
  // values (their mean over the first axis when `mean_over` is set); other pixels are padding.
  const layouts = new Map(); // shape key -> promise of the expanded layout
  function layoutOf(shape) {
    const key = shape.join(",");
    if (!layouts.has(key)) {
      const promise = source.layout(shape).then(expand);
      promise.catch(() => layouts.delete(key));
      layouts.set(key, promise);
    }
    return layouts.get(key);
  }

  /** The layout with `src`: per pixel, the flat index of the value it shows (-1: padding). */
  function expand(layout) {
    const src = new Int32Array(layout.h * layout.w).fill(-1);
    for (const [row, col, h, w, offset, rowStep, colStep] of layout.blocks) {
      for (let y = 0; y < h; y++) {
        const at = (row + y) * layout.w + col;
        for (let x = 0; x < w; x++) src[at + x] = offset + y * rowStep + x * colStep;
      }
    }
    return { ...layout, src };
  }

  /** Channel k's map alone, from the `channel` [h, w, rowStep, colStep] of a mosaic's layout. */
  function channelLayout(layout, k) {
    const [h, w, rowStep, colStep] = layout.channel;
    return expand({ ...layout, h, w, blocks: [[0, 0, h, w, k, rowStep, colStep]], channel: null });
  }

  /** The values a layout's blocks index: the mean over the first axis when it says so. */
  function shownValues(values, layout) {
    const d = layout.mean_over;
    if (!d) return values;
    const size = values.length / d;
    const sum = new Float64Array(size);
    for (let k = 0; k < d; k++) {
      for (let i = 0; i < size; i++) sum[i] += values[k * size + i];
    }
    return Float32Array.from(sum, (v) => v / d);
  }

  function unravel(index, shape) {
    const out = [];
    for (let i = shape.length - 1; i >= 0; i--) {
      out.unshift(index % shape[i]);
      index = Math.floor(index / shape[i]);
    }
    return out;
  }

  const fmt = (v) =>
    !Number.isFinite(v) ? String(v) : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(4) + "";

  // ------------------------------------------------------------------ painting
  let luts = {};

  /** The contract's color rule: index round((v - lo) / (hi - lo) * 255) clipped to 0..255. */
  function lutIndex(v, lo, hi) {
    if (!(hi > lo)) return 0;
    const i = Math.round(((v - lo) / (hi - lo)) * 255);
    return i < 0 ? 0 : i > 255 ? 255 : i;
  }

  function paint(canvas, values, layout, lut, lo, hi) {
    let t = now();
    canvas.width = layout.w;
    canvas.height = layout.h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(layout.w, layout.h);
    t = tick("canvas", t);
    const px = img.data;
    const src = layout.src;
    for (let i = 0, o = 0; i < src.length; i++, o += 4) {
      const s = src[i];
      let rgb;
      if (s < 0) rgb = PAD_RGB;
      else {
        const v = values[s];
        rgb = Number.isFinite(v) ? lut[lutIndex(v, lo, hi)] : BAD_RGB;
      }
      px[o] = rgb[0];
      px[o + 1] = rgb[1];
      px[o + 2] = rgb[2];
      px[o + 3] = 255;
    }
    t = tick("colour", t);
    ctx.putImageData(img, 0, 0);
    tick("canvas", t);
  }

  function paintDamaged(canvas, h, w) {
    canvas.width = Math.max(w, 8);
    canvas.height = Math.max(h, 8);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#c9ced6";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#7b8494";
    ctx.lineWidth = Math.max(1, Math.min(canvas.width, canvas.height) / 25);
    ctx.beginPath();
    ctx.moveTo(0, 0);
    ctx.lineTo(canvas.width, canvas.height);
    ctx.moveTo(canvas.width, 0);
    ctx.lineTo(0, canvas.height);
    ctx.stroke();
  }

  function paintBlank(canvas, h, w) {
    canvas.width = Math.max(w, 1);
    canvas.height = Math.max(h, 1);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#eceff3";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  /** CSS size: an integer zoom when the image fits CELL_PX, else shrink to it. */
  /** A new canvas of w x h CSS pixels backed by the screen's pixels; its context draws in
   * CSS pixels. */
  function sharpCanvas(w, h) {
    const canvas = document.createElement("canvas");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { canvas, ctx };
  }

  function fitCss(canvas, box = CELL_PX) {
    const side = Math.max(canvas.width, canvas.height);
    const zoom = side <= box ? Math.max(1, Math.floor(box / side)) : box / side;
    canvas.style.width = `${Math.max(1, Math.round(canvas.width * zoom))}px`;
    canvas.style.height = `${Math.max(1, Math.round(canvas.height * zoom))}px`;
  }

  function colorbar(lut, lo, hi) {
    const box = document.createElement("div");
    box.className = "colorbar";
    const bar = document.createElement("canvas");
    bar.width = 256;
    bar.height = 1;
    const ctx = bar.getContext("2d");
    const img = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) img.data.set([...lut[i], 255], i * 4);
    ctx.putImageData(img, 0, 0);
    const left = document.createElement("span");
    const right = document.createElement("span");
    left.textContent = fmt(lo);
    right.textContent = fmt(hi);
    box.append(left, bar, right);
    return box;
  }

  /** What a pixel of a drawn canvas shows: "[y, x, c] = v" (null over padding). */
  function readoutAt(canvas, drawn, event) {
    const x = Math.floor((event.offsetX * canvas.width) / canvas.clientWidth);
    const y = Math.floor((event.offsetY * canvas.height) / canvas.clientHeight);
    if (x < 0 || y < 0 || x >= drawn.layout.w || y >= drawn.layout.h) return null;
    const s = drawn.layout.src[y * drawn.layout.w + x];
    if (s < 0) return null;
    const index = unravel(s, drawn.layout.source);
    const prefix = drawn.layout.mean_over ? ":, " : "";
    return `[${prefix}${index.join(", ")}] = ${fmt(drawn.values[s])}`;
  }

  function attachReadout(canvas, target, getDrawn) {
    canvas.addEventListener("mousemove", (e) => {
      const drawn = getDrawn();
      target.textContent = (drawn && readoutAt(canvas, drawn, e)) || target.dataset.idle || "";
    });
    canvas.addEventListener("mouseleave", () => (target.textContent = target.dataset.idle || ""));
  }

  // ------------------------------------------------------------------ state
  const state = {
    runs: [],
    view: "pattern",
    run: 0,
    pattern: 0,
    epoch: null,
    layer: null,
    unit: null,
    compare: null, // the Compare view's comparison (compare.js)
    unitRef: null, // the Unit view's "LAYER" or "LAYER:CHANNEL" (unit.js)
    cmap: "viridis",
    scale: "layer",
    playing: false,
  };
  let generation = 0;
  let lastChange = 0;
  const VIEWS = ["pattern", "analysis", "model", "compare", "unit"];

  const isTraining = (run) => run.epochs.length > 0 && run.epochs[0] !== null;
  const trainingRuns = () => state.runs.filter(isTraining);
  const focusRun = () => state.runs[state.run] || state.runs[0];

  function allEpochs() {
    const set = new Set();
    for (const run of trainingRuns()) run.epochs.forEach((e) => set.add(e));
    return [...set].sort((a, b) => a - b);
  }

  /** The epoch a run shows for the chosen one: the latest it has at or before it. */
  function epochFor(run) {
    if (!isTraining(run)) return null;
    if (state.epoch === null) return run.epochs[run.epochs.length - 1];
    let best = run.epochs[0];
    for (const e of run.epochs) if (e <= state.epoch) best = e;
    return best;
  }

  function maxPattern() {
    if (STATIC) return Math.max(0, ...STATIC.patterns);
    return Math.max(0, ...state.runs.map((r) => r.patterns_ready)) - 1;
  }

  function clampPattern(p) {
    if (STATIC) {
      const list = STATIC.patterns;
      if (!list.length) return 0;
      return list.reduce((best, v) => (Math.abs(v - p) < Math.abs(best - p) ? v : best), list[0]);
    }
    return Math.max(0, Math.min(p, Math.max(0, maxPattern())));
  }

  function stepPattern(delta) {
    if (STATIC) {
      const list = STATIC.patterns;
      const at = list.indexOf(state.pattern);
      const next = list[Math.max(0, Math.min(list.length - 1, at + delta))];
      if (next !== undefined) setPattern(next);
      return;
    }
    setPattern(state.pattern + delta);
  }

  function setPattern(p) {
    p = clampPattern(Number.isFinite(p) ? Math.round(p) : 0);
    $("#pattern").value = p;
    if (p === state.pattern) return;
    state.pattern = p;
    update();
  }

  // ------------------------------------------------------------------ URL hash
  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const int = (k) => (h.has(k) && /^-?\d+$/.test(h.get(k)) ? Number(h.get(k)) : null);
    if (int("run") !== null) state.run = Math.max(0, Math.min(int("run"), state.runs.length - 1));
    if (int("pattern") !== null) state.pattern = clampPattern(int("pattern"));
    state.epoch = int("epoch");
    state.layer = h.get("layer");
    state.unit = int("unit");
    if (VIEWS.includes(h.get("view"))) state.view = h.get("view");
    state.compare = h.get("compare");
    // #unit=LAYER[:CHANNEL] opens the Unit view (the analysis view's unit=N keeps view=analysis)
    if (h.has("unit") && (!h.has("view") || h.get("view") === "unit")) {
      state.view = "unit";
      state.unitRef = h.get("unit");
      state.unitEpoch = state.epoch; // the epoch asked for, until the unit view resolves it
    }
    if (h.get("cmap") && luts[h.get("cmap")]) state.cmap = h.get("cmap");
    if (["layer", "shared"].includes(h.get("scale"))) state.scale = h.get("scale");
  }

  function hashText() {
    if (state.view === "unit" && P.unit) return P.unit.hash(APP);
    const h = new URLSearchParams();
    h.set("run", state.run);
    h.set("pattern", state.pattern);
    const epochs = allEpochs();
    if (epochs.length) h.set("epoch", state.epoch === null ? epochs[epochs.length - 1] : state.epoch);
    if (state.layer) h.set("layer", state.layer);
    h.set("view", state.view);
    if (state.view === "analysis" && state.unit !== null) h.set("unit", state.unit);
    if (state.view === "compare" && state.compare) h.set("compare", state.compare);
    if (state.cmap !== "viridis") h.set("cmap", state.cmap);
    if (state.scale !== "layer") h.set("scale", state.scale);
    return "#" + h.toString();
  }

  function writeHash() {
    const text = hashText();
    if (location.hash !== text) history.replaceState(null, "", text);
  }

  // ------------------------------------------------------------------ the pattern view
  const cells = new Map(); // "<run>|<kind>|<name>" -> cell record

  function makeCell(run, kind, item) {
    const el = document.createElement("div");
    el.className = "cell" + (kind === "input" ? " input" : "");
    const title = document.createElement("h3");
    const canvas = document.createElement("canvas");
    canvas.dataset.run = run.id;
    if (kind === "layer") canvas.dataset.layer = item.name;
    else canvas.dataset.input = item.name;
    const readout = document.createElement("div");
    readout.className = "readout";
    const barSlot = document.createElement("div");
    el.append(title, canvas, barSlot, readout);
    const cell = { run, kind, item, el, title, canvas, readout, barSlot, drawn: null };
    attachReadout(canvas, readout, () => cell.drawn);
    canvas.addEventListener("click", () => openModal(cell));
    return cell;
  }

  function columnsKey() {
    return state.runs.map((r) => `${r.id}:${r.inputs.join(",")}:${r.layers.map((l) => l.name).join(",")}`).join("|");
  }

  /** Stored model inputs (`--keep-inputs`) are drawn first. */
  const shownInputs = (run) => run.inputs;

  let builtColumns = "";
  function buildColumns() {
    const key = columnsKey();
    if (key === builtColumns) {
      // same cells; the runs' facts (patterns ready, epochs) come from the latest poll
      for (const cell of cells.values()) cell.run = state.runs[cell.run.id];
      return;
    }
    builtColumns = key;
    cells.clear();
    const root = $("#columns");
    root.textContent = "";
    for (const run of state.runs) {
      const col = document.createElement("div");
      col.className = "column";
      if (state.runs.length > 1) {
        const h = document.createElement("h2");
        h.textContent = `${run.id}: ${run.name}`;
        col.append(h);
      }
      const box = document.createElement("div");
      box.className = "cells";
      const items = [
        ...shownInputs(run).map((name) => ["input", { name }]),
        ...run.layers.map((layer) => ["layer", layer]),
      ];
      for (const [kind, item] of items) {
        const cell = makeCell(run, kind, item);
        cells.set(`${run.id}|${kind}|${item.name}`, cell);
        box.append(cell.el);
      }
      col.append(box);
      root.append(col);
    }
  }

  function loadCell(cell) {
    const { run, kind, item } = cell;
    const p = state.pattern;
    if (STATIC && p >= run.num_patterns) {
      return Promise.resolve({ pending: `this run has ${run.num_patterns} patterns` });
    }
    if (!STATIC && p >= run.patterns_ready) {
      return Promise.resolve({ pending: `pattern ${p} not captured yet (${run.patterns_ready} ready)` });
    }
    if (kind === "input") return inputTensor(run, item.name, p, true);
    return layerTensor(run, item, p, epochFor(run), true);
  }

  function sharedRange(results) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const [cell, r] of results) {
      if (cell.kind !== "layer" || !r || !r.values) continue;
      if (Number.isFinite(r.min)) lo = Math.min(lo, r.min);
      if (Number.isFinite(r.max)) hi = Math.max(hi, r.max);
    }
    return lo <= hi ? [lo, hi] : [NaN, NaN];
  }

  /** The shape a cell is drawn at: its data's, else its layer's; null while unknown (an input
   * not loaded, a free size). */
  function cellShape(cell, result) {
    const shape = (result && result.shape) || cell.item.shape || null;
    return shape && shape.every(Number.isInteger) ? shape : null;
  }

  function drawCell(cell, result, shape, lay, shared, box) {
    const { canvas, el, title, readout, barSlot, item } = cell;
    title.textContent = item.name + (shape ? " " + lay.label : "");
    const unitLink = cell.kind === "layer" && P.unit ? P.unit.layerLink(APP, cell.run, item.name) : null;
    if (unitLink) title.replaceChildren(unitLink, shape ? " " + lay.label : "");
    if (shape && lay.note) {
      const span = document.createElement("span");
      span.className = "note";
      span.textContent = ` ${lay.note}`;
      title.append(span);
    }
    title.title = title.textContent;
    delete el.dataset.damaged;
    barSlot.textContent = "";
    cell.drawn = null;
    if (result.damaged) {
      el.dataset.damaged = result.damaged;
      paintDamaged(canvas, lay.h, lay.w);
      readout.dataset.idle = `damaged: ${result.damaged}`;
    } else if (!result.values) {
      paintBlank(canvas, lay.h, lay.w);
      readout.dataset.idle = result.pending || result.error || "";
    } else {
      let t = now();
      const values = shownValues(result.values, lay);
      t = tick("decode", t);
      const [lo, hi] = shared && cell.kind === "layer" ? shared : [result.min, result.max];
      paint(canvas, values, lay, luts[state.cmap], lo, hi);
      t = now();
      cell.drawn = { layout: lay, values, lo, hi };
      if (!shared || cell.kind !== "layer") barSlot.append(colorbar(luts[state.cmap], lo, hi));
      readout.dataset.idle = `min ${fmt(result.min)}, max ${fmt(result.max)}`;
      tick("dom", t);
    }
    const t = now();
    readout.textContent = readout.dataset.idle;
    fitCss(canvas, box);
    el.classList.toggle("selected", cell.kind === "layer" && item.name === state.layer);
    tick("dom", t);
  }

  async function renderPattern(gen) {
    let t = now();
    buildColumns();
    const list = [...cells.values()];
    t = tick("columns", t);
    const asked = Promise.all(
      list.map((cell) =>
        loadCell(cell).catch((err) => ({ error: err.message || String(err) }))
      )
    );
    t = tick("request", t);
    const results = await asked;
    // waiting for the answers: from the end of update's own work meanwhile (controls, URL)
    if (timing && timing.sent > t) t = timing.sent;
    t = tick("fetch", t);
    if (gen !== generation) return;
    const shapes = list.map((cell, i) => cellShape(cell, results[i]));
    const lays = await Promise.all(shapes.map((shape) => layoutOf(shape || [])));
    t = tick("layout", t);
    if (gen !== generation) return;
    const pairs = list.map((cell, i) => [cell, results[i]]);
    const shared = state.scale === "shared" ? sharedRange(pairs) : null;
    const perColumn = list.length / Math.max(1, state.runs.length);
    const box = perColumn <= 4 && state.runs.length === 1 ? 340 : CELL_PX;
    pairs.forEach(([cell, r], i) => drawCell(cell, r, shapes[i], lays[i], shared, box));
    t = now();
    const bar = $("#shared-bar");
    bar.hidden = !shared;
    bar.textContent = "";
    if (shared) bar.append(colorbar(luts[state.cmap], shared[0], shared[1]));
    drawMetrics();
    tick("dom", t);
    setTimeout(() => prefetch(gen), PREFETCH_DELAY_MS);
  }

  // The neighbours of a pattern the user stays on (arrow keys): fetched a moment after it is
  // drawn, and not at all when another pattern was asked for meanwhile, so that prefetches
  // never queue in front of the requests of the user's next jump.
  function prefetch(gen) {
    if (STATIC || gen !== generation) return;
    for (const delta of [1, -1]) {
      const p = state.pattern + delta;
      if (p < 0) continue;
      for (const cell of cells.values()) {
        if (p >= cell.run.patterns_ready) continue;
        const load =
          cell.kind === "input"
            ? inputTensor(cell.run, cell.item.name, p, true)
            : layerTensor(cell.run, cell.item, p, epochFor(cell.run), true);
        load.catch(() => {});
      }
    }
  }

  function scrollToLayer() {
    if (!state.layer) return;
    for (const cell of cells.values()) {
      if (cell.kind === "layer" && cell.item.name === state.layer) {
        cell.el.scrollIntoView({ block: "nearest" });
        return;
      }
    }
  }

  // ------------------------------------------------------------------ enlarge (modal)
  let modalCell = null;
  function openModal(cell) {
    if (!cell.drawn && !cell.el.dataset.damaged) return;
    modalCell = cell;
    state.layer = cell.kind === "layer" ? cell.item.name : state.layer;
    writeHash();
    $("#modal-title").textContent = `${cell.title.textContent} · pattern ${state.pattern}`;
    const big = document.createElement("canvas");
    big.width = cell.canvas.width;
    big.height = cell.canvas.height;
    big.getContext("2d").drawImage(cell.canvas, 0, 0);
    const box = Math.min(window.innerWidth * 0.85, window.innerHeight * 0.75);
    fitCss(big, box);
    const body = $("#modal-body");
    body.textContent = "";
    body.append(big);
    if (cell.drawn) body.append(colorbar(luts[state.cmap], cell.drawn.lo, cell.drawn.hi));
    const readout = $("#modal-readout");
    readout.dataset.idle = cell.readout.dataset.idle || "";
    readout.textContent = readout.dataset.idle;
    const drawn = cell.drawn;
    attachReadout(big, readout, () => drawn);
    $("#modal").hidden = false;
  }

  function closeModal() {
    $("#modal").hidden = true;
    modalCell = null;
  }

  // ------------------------------------------------------------------ metrics chart
  let metricsData = new Map(); // run id -> records

  async function loadMetrics(run) {
    if (!run.has_metrics) return [];
    try {
      const body = await source.metrics(run);
      return body.metrics || [];
    } catch (err) {
      return [];
    }
  }

  function metricSeries(records) {
    const skip = new Set(["epoch", "step", "time"]);
    const series = {};
    for (const rec of records) {
      for (const [k, v] of Object.entries(rec)) {
        if (skip.has(k) || typeof v !== "number" || !Number.isFinite(v)) continue;
        (series[k] = series[k] || []).push([rec.epoch, v]);
      }
    }
    return series;
  }

  const SERIES_COLORS = ["#2f6fdb", "#e07b22", "#2a9d58", "#b23ab8", "#8a6d3b", "#c0392b"];

  function drawMetrics() {
    const canvas = $("#metrics");
    const run = trainingRuns()[0];
    canvas.hidden = !run || state.view !== "pattern";
    if (canvas.hidden) return;
    const records = metricsData.get(run.id) || [];
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth || 600;
    const H = canvas.clientHeight || 160;
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.font = "11px system-ui, sans-serif";
    const series = metricSeries(records);
    const epochs = run.epochs;
    const e0 = Math.min(epochs[0], ...records.map((r) => r.epoch));
    const e1 = Math.max(epochs[epochs.length - 1], ...records.map((r) => r.epoch), e0 + 1);
    const box = { l: 40, r: W - 40, t: 12, b: H - 22 };
    const xOf = (e) => box.l + ((e - e0) / (e1 - e0)) * (box.r - box.l);
    ctx.strokeStyle = "#d9dee7";
    ctx.strokeRect(box.l, box.t, box.r - box.l, box.b - box.t);
    ctx.fillStyle = "#667085";
    ctx.textAlign = "center";
    for (const e of epochs) if (epochs.length <= 25 || e % 5 === 0) ctx.fillText(String(e), xOf(e), H - 8);
    const names = Object.keys(series);
    let legendX = box.l + 6;
    names.forEach((name, i) => {
      const pts = series[name];
      const loss = /loss/.test(name);
      const vals = pts.map((p) => p[1]);
      let lo = loss ? Math.min(0, ...vals) : 0;
      let hi = loss ? Math.max(...vals) : Math.max(1, ...vals);
      if (hi <= lo) hi = lo + 1;
      const yOf = (v) => box.b - ((v - lo) / (hi - lo)) * (box.b - box.t);
      const color = SERIES_COLORS[i % SERIES_COLORS.length];
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 1.8;
      ctx.beginPath();
      pts.forEach(([e, v], j) => (j ? ctx.lineTo(xOf(e), yOf(v)) : ctx.moveTo(xOf(e), yOf(v))));
      ctx.stroke();
      for (const [e, v] of pts) ctx.fillRect(xOf(e) - 2, yOf(v) - 2, 4, 4);
      ctx.textAlign = "left";
      const last = vals[vals.length - 1];
      const label = `${name} ${fmt(last)}`;
      ctx.fillText(label, legendX, box.t + 12);
      legendX += ctx.measureText(label).width + 14;
      ctx.textAlign = loss ? "right" : "left";
      ctx.fillText(fmt(hi), loss ? box.l - 4 : box.r + 4, box.t + 4 + (i > 1 ? 12 : 0));
    });
    const current = epochFor(run);
    ctx.strokeStyle = "#1d2430";
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(xOf(current), box.t);
    ctx.lineTo(xOf(current), box.b);
    ctx.stroke();
    ctx.setLineDash([]);
    canvas.dataset.epoch = current;
    canvas.onclick = (e) => {
      const epoch = e0 + ((e.offsetX - box.l) / (box.r - box.l)) * (e1 - e0);
      setEpoch(epochs.reduce((b, v) => (Math.abs(v - epoch) < Math.abs(b - epoch) ? v : b)));
    };
  }

  // ------------------------------------------------------------------ the analysis view
  function flatten(nested) {
    const out = [];
    const walk = (v) => (Array.isArray(v) ? v.forEach(walk) : out.push(v === null ? NaN : Number(v)));
    walk(nested);
    return Float32Array.from(out);
  }

  /** The finite range of the values a layout shows (its padding left out). */
  function shownRange(values, layout) {
    return finiteRange(Array.from(layout.src, (s) => (s < 0 ? NaN : values[s])));
  }

  function finiteRange(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return lo <= hi ? [lo, hi] : [NaN, NaN];
  }

  function card(titleText) {
    const el = document.createElement("div");
    el.className = "card";
    const h = document.createElement("h3");
    h.textContent = titleText;
    el.append(h);
    return el;
  }

  function mapCard(titleText, values, lay, box = 200) {
    const el = card(titleText);
    el.classList.add("map");
    const shown = shownValues(values, lay);
    const canvas = document.createElement("canvas");
    const [lo, hi] = finiteRange(shown);
    paint(canvas, shown, lay, luts[state.cmap], lo, hi);
    fitCss(canvas, box);
    const readout = document.createElement("div");
    readout.className = "readout";
    const drawn = { layout: lay, values: shown };
    attachReadout(canvas, readout, () => drawn);
    el.append(canvas, colorbar(luts[state.cmap], lo, hi), readout);
    return el;
  }

  function histogramCard(edges, counts) {
    const el = card("histogram (all values)");
    const W = 300;
    const H = 150;
    const { canvas, ctx } = sharpCanvas(W, H);
    const top = Math.max(1, ...counts);
    const bw = (W - 20) / Math.max(1, counts.length);
    ctx.fillStyle = "#2f6fdb";
    counts.forEach((c, i) => {
      const h = (Math.log1p(c) / Math.log1p(top)) * (H - 30);
      ctx.fillRect(10 + i * bw, H - 18 - h, Math.max(1, bw - 1), h);
    });
    ctx.fillStyle = "#667085";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(fmt(edges[0]), 10, H - 4);
    ctx.textAlign = "right";
    ctx.fillText(fmt(edges[edges.length - 1]), W - 10, H - 4);
    ctx.fillText("log count", W - 10, 12);
    el.append(canvas);
    return el;
  }

  function unitsCard(a, run, layer) {
    const dead = a.dead || [];
    const nDead = dead.filter(Boolean).length;
    const el = card(`units (${dead.length}, ${nDead} dead)`);
    const box = document.createElement("div");
    box.className = "units";
    const means = a.channel_mean || [];
    dead.forEach((isDead, c) => {
      const link = document.createElement("a");
      link.className = "unit" + (isDead ? " dead" : "") + (c === state.unit ? " active" : "");
      link.textContent = String(c);
      link.title = `unit ${c}: mean ${fmt(num(means[c]))}${isDead ? ", dead (never positive)" : ""}`;
      link.href = unitHash(run, layer, c);
      box.append(link);
    });
    el.append(box);
    return el;
  }

  function unitHash(run, layer, unit) {
    const h = new URLSearchParams(hashText().slice(1));
    h.set("run", run.id);
    h.set("view", "analysis");
    h.set("layer", layer.name);
    h.set("unit", unit);
    return "#" + h.toString();
  }

  async function thumbFor(run, layer, p, unit, epoch) {
    const wrap = document.createElement("div");
    wrap.className = "thumb";
    const canvas = document.createElement("canvas");
    const caption = document.createElement("span");
    wrap.append(canvas, caption);
    let t;
    let lay;
    const inputs = shownInputs(run).length > 0;
    const inReport = !STATIC || (STATIC.patterns.includes(p) && p < run.num_patterns);
    try {
      if (!inReport) throw new Error("not in this report");
      t = inputs ? await inputTensor(run, run.inputs[0], p) : await layerTensor(run, layer, p, epoch);
      if (t.values) lay = await layoutOf(t.shape);
    } catch (err) {
      t = { error: err.message };
    }
    if (!t.values) {
      paintDamaged(canvas, 24, 24);
    } else {
      // a unit of a feature map: that channel's map alone; else the whole output
      const shown = !inputs && lay.channel ? channelLayout(lay, unit) : lay;
      const values = shownValues(t.values, lay);
      const [lo, hi] = shownRange(values, shown);
      paint(canvas, values, shown, luts[state.cmap], lo, hi);
    }
    fitCss(canvas, 72);
    wrap.title = `open pattern ${p}`;
    wrap.addEventListener("click", () => {
      state.view = "pattern";
      state.pattern = p;
      state.layer = layer.name;
      update();
    });
    return [wrap, caption];
  }

  async function unitCard(a, run, layer, epoch) {
    const c = state.unit;
    const el = card(`unit ${c}` + (a.dead && a.dead[c] ? " · dead" : ""));
    const facts = document.createElement("div");
    facts.className = "readout";
    facts.textContent = `channel mean ${fmt(num((a.channel_mean || [])[c]))}`;
    const thumbs = document.createElement("div");
    thumbs.className = "thumbs";
    const index = (a.top_index || [])[c] || [];
    const value = (a.top_value || [])[c] || [];
    const made = await Promise.all(
      index.filter((p) => p !== null && p >= 0).map((p) => thumbFor(run, layer, p, c, epoch))
    );
    made.forEach(([wrap, caption], i) => {
      caption.textContent = `#${index[i]} · ${fmt(num(value[i]))}`;
      thumbs.append(wrap);
    });
    const what = shownInputs(run).length ? "inputs" : "this unit's output";
    const sub = document.createElement("div");
    sub.className = "muted";
    sub.textContent = `top patterns (${what}); click one to open it`;
    el.append(facts, sub, thumbs);
    if (P.unit && (run.features || []).includes(layer.name)) {
      const page = document.createElement("a");
      page.className = "unit-page-link";
      page.href = P.unit.link(APP, run, layer.name, c, epoch);
      page.textContent = `unit page: what unit ${c} wants to see`;
      el.append(page);
    }
    return el;
  }

  function ckaCard(cka, lay) {
    const el = card(`CKA (${cka.method || "linear"}) between layers`);
    const n = cka.names.length;
    const values = flatten(cka.matrix);
    const canvas = document.createElement("canvas");
    paint(canvas, values, lay, luts[state.cmap], 0, 1);
    fitCss(canvas, 220);
    const readout = document.createElement("div");
    readout.className = "readout";
    readout.dataset.idle = "0 to 1; hover a square";
    readout.textContent = readout.dataset.idle;
    canvas.addEventListener("mousemove", (e) => {
      const x = Math.floor((e.offsetX * n) / canvas.clientWidth);
      const y = Math.floor((e.offsetY * n) / canvas.clientHeight);
      if (x >= 0 && y >= 0 && x < n && y < n)
        readout.textContent = `${cka.names[y]} × ${cka.names[x]} = ${fmt(values[y * n + x])}`;
    });
    const legend = document.createElement("ol");
    legend.start = 0;
    legend.className = "muted";
    cka.names.forEach((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      legend.append(li);
    });
    el.append(canvas, colorbar(luts[state.cmap], 0, 1), readout, legend);
    return el;
  }

  async function renderAnalysis(gen) {
    const root = $("#view-analysis");
    const runs = state.runs.filter((r) => r.has_analysis);
    const out = document.createElement("div");
    if (!runs.length) {
      out.textContent = "No analysis in these runs: run `passage analyze RUN` first.";
      root.replaceChildren(out);
      return;
    }
    const run = runs.find((r) => r.id === state.run) || runs[0];
    const layer = run.layers.find((l) => l.name === state.layer) || run.layers[0];
    const head = document.createElement("div");
    head.className = "analysis-head";
    const labels = await Promise.all(
      run.layers.map((l) =>
        l.shape.every(Number.isInteger) ? layoutOf(l.shape).then((x) => x.label, () => "") : ""
      )
    );
    head.append(runSelect(runs, run), layerSelect(run, layer, labels));
    out.append(head);
    const epoch = epochFor(run);
    const grid = document.createElement("div");
    grid.className = "analysis-grid";
    out.append(grid);
    let a;
    try {
      a = await source.analysis(run, layer, epoch);
    } catch (err) {
      grid.append(card(`no analysis for ${layer.name}: ${err.message}`));
    }
    let lay;
    if (a) {
      try {
        lay = await layoutOf(a.shape);
      } catch (err) {
        grid.append(card(`no layout for ${layer.name}: ${err.message}`));
      }
    }
    if (a && lay) {
      grid.append(
        mapCard("mean", flatten(a.mean), lay),
        mapCard("std", flatten(a.std), lay),
        mapCard("fraction positive", flatten(a.frac_positive), lay),
        histogramCard(flatten(a.hist_edges), Array.from(flatten(a.hist_counts))),
        unitsCard(a, run, layer)
      );
      const units = (a.dead || []).length;
      if (state.unit === null || state.unit >= units) state.unit = 0;
      if (units) grid.append(await unitCard(a, run, layer, epoch));
    }
    if (gen !== generation) return;
    const ckaBox = document.createElement("div");
    ckaBox.className = "big";
    try {
      const cka = await source.cka(run);
      const n = cka.names.length;
      ckaBox.append(ckaCard(cka, await layoutOf([n, n])));
    } catch (err) {
      ckaBox.append(card(`no CKA: ${err.message}`));
    }
    out.append(ckaBox);
    if (gen !== generation) return;
    root.replaceChildren(out);
    writeHash();
  }

  function runSelect(runs, run) {
    const sel = document.createElement("select");
    sel.id = "analysis-run";
    for (const r of runs) sel.add(new Option(`${r.id}: ${r.name}`, r.id, false, r.id === run.id));
    sel.hidden = runs.length < 2;
    sel.addEventListener("change", () => {
      state.run = Number(sel.value);
      state.unit = null;
      update();
    });
    return sel;
  }

  function layerSelect(run, layer, labels) {
    const label = document.createElement("label");
    label.textContent = "Layer ";
    const sel = document.createElement("select");
    sel.id = "analysis-layer";
    run.layers.forEach((l, i) => sel.add(new Option(`${l.name} ${labels[i]}`.trim(), l.name, false, l === layer)));
    sel.addEventListener("change", () => {
      state.layer = sel.value;
      state.unit = null;
      update();
    });
    label.append(sel);
    return label;
  }

  // ------------------------------------------------------------------ the model view
  async function renderModel(gen) {
    const root = $("#view-model");
    const out = document.createElement("div");
    out.className = "model-grid";
    const parts = await Promise.all(state.runs.map((run) => modelColumn(run)));
    if (gen !== generation) return;
    out.append(...parts);
    root.replaceChildren(out);
  }

  async function modelColumn(run) {
    const col = document.createElement("div");
    const h = document.createElement("h2");
    h.className = "column-title";
    h.textContent = `${run.id}: ${run.name}`;
    col.append(h);
    if (run.has_model) {
      const img = new Image();
      img.alt = `architecture of ${run.name}`;
      const loaded = new Promise((resolve) => {
        img.onload = resolve;
        img.onerror = resolve;
      });
      img.src = source.modelUrl(run);
      col.append(img);
      await loaded;
    }
    const pre = document.createElement("pre");
    try {
      pre.textContent = (await source.info(run)).text;
    } catch (err) {
      pre.textContent = err.message;
    }
    col.append(pre);
    return col;
  }

  // ------------------------------------------------------------------ views and state
  async function update() {
    const gen = ++generation;
    const t0 = now();
    timing = { view: state.view, pattern: state.pattern };
    document.body.dataset.state = "loading";
    // the pattern view's requests leave first; the controls and the URL are set meanwhile
    const drawing = state.view === "pattern" ? renderPattern(gen) : null;
    let t = now();
    syncControls();
    t = tick("controls", t);
    writeHash();
    t = tick("hash", t);
    for (const v of VIEWS) $(`#view-${v}`).hidden = v !== state.view;
    document.querySelectorAll("#tabs [data-view]").forEach((b) => b.classList.toggle("active", b.dataset.view === state.view));
    timing.sent = tick("controls", t);
    try {
      if (drawing) await drawing;
      else if (state.view === "analysis") await renderAnalysis(gen);
      else if (state.view === "compare") await P.compare.render(APP, gen);
      else if (state.view === "unit") await P.unit.render(APP, gen);
      else await renderModel(gen);
    } catch (err) {
      showMessage(`could not draw: ${err.message}`);
    }
    if (gen !== generation) return;
    document.body.dataset.state = "ready";
    timing.total = now() - t0;
    delete timing.sent;
    P.timing = timing;
    if (state.playing) schedulePlay();
  }

  function showMessage(text) {
    const m = $("#message");
    m.hidden = !text;
    m.textContent = text || "";
  }

  function epochStep(epochs) {
    if (epochs.length < 2) return 1;
    const step = epochs[1] - epochs[0];
    return epochs.every((e, i) => i === 0 || e - epochs[i - 1] === step) ? step : 1;
  }

  function syncControls() {
    const pat = $("#pattern");
    pat.max = maxPattern();
    if (document.activeElement !== pat) pat.value = state.pattern;
    const total = Math.max(0, ...state.runs.map((r) => r.num_patterns));
    const ready = STATIC ? STATIC.patterns.length : Math.max(0, ...state.runs.map((r) => r.patterns_ready));
    $("#pattern-count").textContent = STATIC
      ? `${ready} in this report`
      : ready < total
        ? `${ready} of ${total} ready`
        : `of ${total}`;
    const epochs = allEpochs();
    $("#epoch-box").hidden = !epochs.length;
    if (epochs.length) {
      const slider = $("#epoch");
      slider.min = epochs[0];
      slider.max = epochs[epochs.length - 1];
      slider.step = epochStep(epochs);
      const shown = state.epoch === null ? epochs[epochs.length - 1] : state.epoch;
      slider.value = shown;
      $("#epoch-value").textContent = `${shown} / ${epochs[epochs.length - 1]}`;
    }
    $("#play").innerHTML = state.playing ? "&#10074;&#10074;" : "&#9654;";
    $("#cmap").value = state.cmap;
    $("#scale").value = state.scale;
    const analysisTab = document.querySelector('#tabs [data-view="analysis"]');
    analysisTab.disabled = !state.runs.some((r) => r.has_analysis);
    // the Compare view (compare.js) reads the API: not in a static report
    document.querySelector('#tabs [data-view="compare"]').disabled = Boolean(STATIC) || !P.compare;
    // the Unit view (unit.js): runs with feature visualizations (passage visualize)
    document.querySelector('#tabs [data-view="unit"]').disabled =
      !P.unit || !state.runs.some((r) => (r.features || []).length);
  }

  function setEpoch(e) {
    const epochs = allEpochs();
    if (!epochs.length) return;
    const snapped = epochs.reduce((b, v) => (Math.abs(v - e) < Math.abs(b - e) ? v : b));
    if (snapped === state.epoch) return;
    state.epoch = snapped;
    update();
  }

  let playTimer = null;
  function schedulePlay() {
    clearTimeout(playTimer);
    playTimer = setTimeout(() => {
      if (!state.playing) return;
      const epochs = allEpochs();
      const at = epochs.indexOf(state.epoch === null ? epochs[epochs.length - 1] : state.epoch);
      state.epoch = epochs[(at + 1) % epochs.length];
      update();
    }, 600);
  }

  function togglePlay() {
    state.playing = !state.playing;
    if (state.playing) schedulePlay();
    else clearTimeout(playTimer);
    syncControls();
  }

  // ------------------------------------------------------------------ live runs
  /** New runinfo from the poll: what changed, and whether the visible view must redraw. */
  function applyRuns(runs) {
    const before = new Map(state.runs.map((r) => [r.id, r]));
    const lastEpochs = allEpochs();
    const followLast = state.epoch === null || state.epoch === lastEpochs[lastEpochs.length - 1];
    let changed = false;
    let redraw = false;
    for (const run of runs) {
      const old = before.get(run.id);
      if (old && old.version === run.version) continue;
      changed = true;
      if (!old) redraw = true;
      else if (state.pattern >= old.patterns_ready && state.pattern < run.patterns_ready) redraw = true;
      else if (old.layers.length !== run.layers.length) redraw = true;
    }
    state.runs = runs;
    const epochs = allEpochs();
    if (followLast && epochs.length && epochs[epochs.length - 1] !== lastEpochs[lastEpochs.length - 1]) {
      if (state.epoch !== null) state.epoch = epochs[epochs.length - 1];
      redraw = true;
    }
    return { changed, redraw };
  }

  async function poll() {
    let body;
    try {
      body = await source.runs();
    } catch (err) {
      showMessage(`server not reachable: ${err.message}`);
      return;
    }
    showMessage("");
    const { changed, redraw } = applyRuns(body.runs);
    if (changed) {
      lastChange = Date.now();
      for (const run of trainingRuns()) metricsData.set(run.id, await loadMetrics(run));
    }
    $("#live").hidden = Date.now() - lastChange > 3000;
    if (redraw && !state.playing) update();
    else {
      syncControls();
      if (changed && state.view === "pattern") drawMetrics();
    }
  }

  // ------------------------------------------------------------------ controls
  function bindControls() {
    $("#pattern").addEventListener("change", (e) => setPattern(Number(e.target.value)));
    $("#prev").addEventListener("click", () => stepPattern(-1));
    $("#next").addEventListener("click", () => stepPattern(1));
    $("#epoch").addEventListener("input", (e) => setEpoch(Number(e.target.value)));
    $("#play").addEventListener("click", togglePlay);
    $("#cmap").addEventListener("change", (e) => {
      state.cmap = e.target.value;
      update();
    });
    $("#scale").addEventListener("change", (e) => {
      state.scale = e.target.value;
      update();
    });
    document.querySelectorAll("#tabs [data-view]").forEach((b) =>
      b.addEventListener("click", () => {
        state.view = b.dataset.view;
        update();
      })
    );
    $("#modal").addEventListener("click", (e) => e.target.id === "modal" && closeModal());
    $("#modal-close").addEventListener("click", closeModal);
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", () => {
      if (location.hash === hashText()) return;
      readHash();
      update().then(scrollToLayer);
    });
  }

  function onKey(e) {
    if (e.key === "Escape") return closeModal();
    const t = e.target;
    if (t instanceof HTMLSelectElement || (t instanceof HTMLInputElement && t.type !== "number")) return;
    if (e.key === "ArrowLeft") {
      e.preventDefault();
      stepPattern(-1);
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      stepPattern(1);
    }
  }

  function fillColormaps(maps) {
    luts = maps.luts;
    const sel = $("#cmap");
    for (const name of maps.names) sel.add(new Option(name, name));
  }

  /** The report's size line (written into the page by `passage report`) goes in the bar. */
  function showReportSize() {
    $("#live").remove();
    let note = $("#report-size");
    if (!note) {
      note = document.createElement("span");
      note.id = "report-size";
      const mb = (STATIC.bytes / 1e6).toFixed(1);
      note.textContent = `static report: ${STATIC.patterns.length} pattern(s), ${mb} MB`;
      const units = STATIC.units || { total: 0 };
      if (units.total) note.textContent += `, unit pages ${units.included} of ${units.total}`;
    }
    note.classList.add("muted");
    $(".controls").append(note);
  }

  async function start() {
    bindControls();
    try {
      const [maps, body] = await Promise.all([source.colormaps(), source.runs()]);
      fillColormaps(maps);
      state.runs = body.runs;
    } catch (err) {
      showMessage(`could not load the runs: ${err.message}`);
      document.body.dataset.state = "ready";
      return;
    }
    if (STATIC) showReportSize();
    if (!luts[state.cmap]) state.cmap = Object.keys(luts)[0];
    readHash();
    state.pattern = clampPattern(state.pattern);
    for (const run of trainingRuns()) metricsData.set(run.id, await loadMetrics(run));
    await update();
    scrollToLayer();
    if (!STATIC) setInterval(poll, 1000);
  }

  // what compare.js (the Compare view, loaded before this file) draws with
  const APP = {
    state,
    update,
    isCurrent: (gen) => gen === generation,
    json: httpJson,
    lut: () => luts[state.cmap] || luts.viridis,
    fmt,
    writeHash,
    BAD_RGB,
    lutIndex,
    finiteRange,
    card,
    sharpCanvas,
    fitCss,
    // a payload from the API, or in a static report the script data/<key>.js
    get: (path, key) => (STATIC ? staticLoad(key) : httpJson(path)),
  };

  P.state = state; // for debugging from the console
  start();
})();
