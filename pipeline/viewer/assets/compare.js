/* Passage viewer: the Compare view (a run's comparisons with neural data).
 *
 * Loaded before app.js, which calls PASSAGE.compare.render(app, gen) with what it shares
 * (state, update, the colormap LUT, fmt, json). Every number shown comes from the server
 * (api/run/R/compare/NAME, .../rdm, api/run/R/regions); this file only places and colors them.
 *
 * Canvases state their geometry in data attributes (plot = "left,top,width,height", the value
 * range of the y axis, the heatmap's grid), so what is drawn where can be checked from outside.
 */
"use strict";
(() => {
  const P = (window.PASSAGE = window.PASSAGE || {});
  const q = encodeURIComponent;
  const $ = (sel) => document.querySelector(sel);

  // the layer profile's canvas: fixed size and margins (layer names below the plot)
  const PROFILE = { w: 640, h: 260, left: 52, right: 12, top: 14, bottom: 70 };
  const BAR_RGB = [159, 179, 209];
  const BEST_RGB = [47, 111, 219]; // the best layer's bar (style.css's accent)
  const WHISKER = "#1d2430";
  const SELECTED = "#fdf0e2"; // the selected layer's slot
  const CEILING = "rgba(120, 120, 120, 0.22)"; // the noise-ceiling band, behind the bars
  const HEAT = { maxW: 560, label: 130, axis: 18 }; // heatmap: label column, epoch axis
  const RDM_PX = 256; // an RDM's longest side on screen

  let reference = "mean"; // the reference RDM beside the layer's: "mean" or an index
  const lists = new Map(); // run id -> {comparisons, regions}, per run version

  const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;



  const isNum = (v) => typeof v === "number" && Number.isFinite(v);



  function text(tag, content, className) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (className) el.className = className;
    return el;
  }

  async function listFor(app, run) {
    const key = `${run.id}|${run.version}`;
    if (!lists.has(key)) {
      const promise = app.json(`api/run/${run.id}/compare`);
      promise.catch(() => lists.delete(key));
      lists.set(key, promise);
    }
    return lists.get(key);
  }

  /** The epoch shown: the chosen one when the comparison has it, else the latest before. */
  function pickEpoch(epochs, chosen) {
    if (!epochs) return null;
    if (chosen === null || chosen === undefined) return epochs[epochs.length - 1];
    let best = epochs[0];
    for (const e of epochs) if (e <= chosen) best = e;
    return best;
  }

  // ------------------------------------------------------------------ the layer profile
  function profileCard(app, c, row, layer) {
    const el = app.card("Layer profile");
    const canvas = document.createElement("canvas");
    canvas.id = "compare-profile";
    canvas.width = PROFILE.w;
    canvas.height = PROFILE.h;
    canvas.style.width = `${PROFILE.w}px`;
    canvas.style.height = `${PROFILE.h}px`;
    const L = c.layers.length;
    const { left, top } = PROFILE;
    const pw = PROFILE.w - PROFILE.left - PROFILE.right;
    const ph = PROFILE.h - PROFILE.top - PROFILE.bottom;
    const [ceilLo, ceilHi] = c.noise_ceiling || [null, null];
    // the axis spans 0, every score, interval end and ceiling (the server's numbers)
    const shown = [0, ...row.score, ...row.ci.flat(), ceilLo, ceilHi].filter(isNum);
    let lo = Math.min(...shown);
    let hi = Math.max(...shown);
    if (!(hi > lo)) hi = lo + 1;
    const pad = (hi - lo) * 0.05;
    lo = lo < 0 ? lo - pad : lo;
    hi += pad;
    const y = (v) => Math.round(top + ((hi - v) / (hi - lo)) * ph);
    const slot = pw / L;
    const barW = Math.max(2, Math.round(slot * 0.6));
    const center = (i) => Math.round(left + (i + 0.5) * slot);
    canvas.dataset.plot = [left, top, pw, ph].join(",");
    canvas.dataset.lo = String(lo);
    canvas.dataset.hi = String(hi);
    canvas.dataset.bar = String(barW);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const at = c.layers.indexOf(layer); // the selected layer: its slot tinted, behind the bars
    if (at >= 0) {
      ctx.fillStyle = SELECTED;
      ctx.fillRect(Math.round(left + at * slot), top, Math.round(slot), ph);
    }
    if (isNum(ceilLo) && isNum(ceilHi)) {
      ctx.fillStyle = CEILING;
      ctx.fillRect(left, y(ceilHi), pw, Math.max(1, y(ceilLo) - y(ceilHi)));
    }
    const base = y(0);
    row.score.forEach((v, i) => {
      if (!isNum(v)) return;
      ctx.fillStyle = rgb(c.layers[i] === row.best ? BEST_RGB : BAR_RGB);
      const top_ = Math.min(base, y(v));
      ctx.fillRect(center(i) - Math.floor(barW / 2), top_, barW, Math.max(1, Math.abs(base - y(v))));
    });
    ctx.strokeStyle = WHISKER;
    ctx.lineWidth = 1;
    row.ci.forEach(([a, b], i) => {
      if (!isNum(a) || !isNum(b)) return;
      const x = center(i) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, y(a));
      ctx.lineTo(x, y(b));
      ctx.moveTo(x - 4, y(a) + 0.5);
      ctx.lineTo(x + 4, y(a) + 0.5);
      ctx.moveTo(x - 4, y(b) + 0.5);
      ctx.lineTo(x + 4, y(b) + 0.5);
      ctx.stroke();
    });
    // axes, ticks, the selected layer, names
    ctx.strokeStyle = "#98a2b3";
    ctx.beginPath();
    ctx.moveTo(left - 0.5, top);
    ctx.lineTo(left - 0.5, top + ph);
    ctx.moveTo(left, base + 0.5);
    ctx.lineTo(left + pw, base + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#667085";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of [lo, 0, hi]) ctx.fillText(app.fmt(v), left - 4, y(v));
    ctx.save();
    ctx.textAlign = "right";
    ctx.fillStyle = "#1d2430";
    c.layers.forEach((name, i) => {
      ctx.save();
      ctx.translate(center(i), top + ph + 6);
      ctx.rotate(-Math.PI / 4);
      ctx.fillText(name.length > 16 ? name.slice(0, 15) + "…" : name, 0, 0);
      ctx.restore();
    });
    ctx.restore();
    const readout = text("div", "", "readout");
    readout.dataset.idle = "hover a layer; click to show its RDM";
    readout.textContent = readout.dataset.idle;
    const slotAt = (e) => Math.floor(((e.offsetX * canvas.width) / canvas.clientWidth - left) / slot);
    canvas.addEventListener("mousemove", (e) => {
      const i = slotAt(e);
      if (i < 0 || i >= L) return (readout.textContent = readout.dataset.idle);
      const [a, b] = row.ci[i] || [null, null];
      readout.textContent = `${c.layers[i]}: ${app.fmt(row.score[i])} [${app.fmt(a)}, ${app.fmt(b)}]`;
    });
    canvas.addEventListener("click", (e) => {
      const i = slotAt(e);
      if (i < 0 || i >= L) return;
      app.state.layer = c.layers[i];
      app.update();
    });
    const legend = text(
      "div",
      `bars: score (${c.method}, mean over ${c.references.length} reference RDM(s)); whiskers: ` +
        "bootstrap 95 % interval; grey band: noise ceiling" +
        (isNum(ceilLo) ? ` [${app.fmt(ceilLo)}, ${app.fmt(ceilHi)}]` : " (none: one reference)"),
      "muted"
    );
    el.append(canvas, readout, legend);
    return el;
  }

  // ------------------------------------------------------------------ layers x epochs
  function heatmapCard(app, c, layer, epoch) {
    const el = app.card("Score per layer and epoch (click a cell)");
    const L = c.layers.length;
    const E = c.epochs.length;
    const cw = Math.max(4, Math.min(40, Math.floor(HEAT.maxW / E)));
    const ch = Math.max(10, Math.min(22, Math.floor(360 / L)));
    const canvas = document.createElement("canvas");
    canvas.id = "compare-epochs";
    canvas.width = HEAT.label + E * cw + 2;
    canvas.height = L * ch + HEAT.axis;
    canvas.style.width = `${canvas.width}px`;
    canvas.style.height = `${canvas.height}px`;
    canvas.dataset.grid = [HEAT.label, 0, cw, ch].join(",");
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const lut = app.lut();
    const [lo, hi] = c.score_range;
    for (let e = 0; e < E; e++) {
      for (let l = 0; l < L; l++) {
        const v = c.score[e][l];
        ctx.fillStyle = rgb(isNum(v) ? lut[app.lutIndex(v, lo, hi)] : app.BAD_RGB);
        ctx.fillRect(HEAT.label + e * cw, l * ch, cw, ch);
      }
    }
    ctx.fillStyle = "#1d2430";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    c.layers.forEach((name, l) => ctx.fillText(name.slice(0, 20), HEAT.label - 6, l * ch + ch / 2));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(28 / cw));
    c.epochs.forEach((ep, e) => {
      if (e % every === 0 || e === E - 1) ctx.fillText(String(ep), HEAT.label + e * cw + cw / 2, L * ch + 3);
    });
    const el_ = c.layers.indexOf(layer);
    const ee = c.epochs.indexOf(epoch);
    if (el_ >= 0 && ee >= 0) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect(HEAT.label + ee * cw + 1, el_ * ch + 1, cw - 2, ch - 2);
      ctx.strokeStyle = "#000000";
      ctx.lineWidth = 1;
      ctx.strokeRect(HEAT.label + ee * cw - 0.5, el_ * ch - 0.5, cw + 1, ch + 1);
    }
    const readout = text("div", "", "readout");
    readout.dataset.idle = `${app.fmt(lo)} to ${app.fmt(hi)}; hover a cell`;
    readout.textContent = readout.dataset.idle;
    const cellAt = (e) => {
      const x = (e.offsetX * canvas.width) / canvas.clientWidth - HEAT.label;
      const yy = (e.offsetY * canvas.height) / canvas.clientHeight;
      const ei = Math.floor(x / cw);
      const li = Math.floor(yy / ch);
      return ei >= 0 && ei < E && li >= 0 && li < L ? [li, ei] : null;
    };
    canvas.addEventListener("mousemove", (e) => {
      const at = cellAt(e);
      readout.textContent = at
        ? `${c.layers[at[0]]}, epoch ${c.epochs[at[1]]}: ${app.fmt(c.score[at[1]][at[0]])}`
        : readout.dataset.idle;
    });
    canvas.addEventListener("click", (e) => {
      const at = cellAt(e);
      if (!at) return;
      app.state.layer = c.layers[at[0]];
      app.state.epoch = c.epochs[at[1]];
      app.update();
    });
    el.append(canvas, readout);
    return el;
  }

  // ------------------------------------------------------------------ RDMs
  function rdmCanvas(app, rdm, id) {
    const canvas = document.createElement("canvas");
    canvas.id = id;
    const n = rdm.size;
    const zoom = n <= RDM_PX ? Math.max(1, Math.floor(RDM_PX / n)) : 1;
    canvas.width = n * zoom;
    canvas.height = n * zoom;
    canvas.dataset.size = String(n);
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(n, n);
    const codes = Uint8Array.from(atob(rdm.codes), (ch) => ch.charCodeAt(0));
    const lut = app.lut();
    for (let i = 0; i < n * n; i++) {
      const code = codes[i];
      const color = code === rdm.nan ? app.BAD_RGB : lut[Math.round((code / rdm.scale) * 255)];
      img.data.set([color[0], color[1], color[2], 255], i * 4);
    }
    const small = document.createElement("canvas");
    small.width = n;
    small.height = n;
    small.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
    if (rdm.groups.length > 1) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const [start] of rdm.groups.slice(1)) {
        const at = Math.round((start * canvas.width) / rdm.conditions) + 0.5;
        ctx.moveTo(at, 0);
        ctx.lineTo(at, canvas.height);
        ctx.moveTo(0, at);
        ctx.lineTo(canvas.width, at);
      }
      ctx.stroke();
    }
    canvas.style.width = `${Math.min(RDM_PX, canvas.width)}px`;
    canvas.style.height = `${Math.min(RDM_PX, canvas.height)}px`;
    return canvas;
  }

  async function rdmCard(app, run, c, layer, epoch, gen) {
    const el = app.card("RDMs (rank-transformed)");
    const base = `api/run/${run.id}/compare/${q(c.name)}/rdm`;
    const refs = c.references.length;
    if (reference !== "mean" && !(Number(reference) < refs)) reference = "mean";
    const select = document.createElement("select");
    select.id = "compare-reference";
    select.add(new Option(refs > 1 ? `mean of ${refs} references` : c.references[0] || "reference", "mean"));
    if (refs > 1) c.references.forEach((name, i) => select.add(new Option(name, String(i))));
    select.value = reference;
    select.addEventListener("change", () => {
      reference = select.value;
      app.update();
    });
    const epochPart = epoch === null ? "" : `&epoch=${epoch}`;
    const [ref, model] = await Promise.all([
      app.json(`${base}?reference=${q(reference)}`).catch((err) => ({ error: err.message })),
      app.json(`${base}?layer=${q(layer)}${epochPart}`).catch((err) => ({ error: err.message })),
    ]);
    if (!app.isCurrent(gen)) return el;
    const pair = document.createElement("div");
    pair.className = "compare-rdms";
    const side = (title, rdm, id) => {
      const box = document.createElement("figure");
      box.append(rdm.error ? text("div", rdm.error, "readout") : rdmCanvas(app, rdm, id));
      box.append(text("figcaption", title));
      return box;
    };
    pair.append(
      side(refs > 1 && reference === "mean" ? "reference (mean)" : `reference ${c.references[reference] || c.references[0]}`, ref, "compare-ref"),
      side(`${layer}${epoch === null ? "" : ", epoch " + epoch}`, model, "compare-layer")
    );
    const head = document.createElement("label");
    head.textContent = "Reference ";
    head.append(select);
    const note = model.size && model.size < model.conditions ? `, shown as ${model.size} x ${model.size} block means` : "";
    const grouped = (model.groups || []).length > 1 ? `, grouped by ${model.groups.length} labels` : "";
    el.append(head, pair, text("div", `${c.info.conditions} conditions${grouped}${note}; 0 = most similar pair`, "muted"));
    return el;
  }

  // ------------------------------------------------------------------ regions x layers
  async function regionsCard(app, run, epoch) {
    const el = app.card("Regions x layers");
    let r;
    try {
      r = await app.json(`api/run/${run.id}/regions`);
    } catch (err) {
      el.append(text("div", err.message, "readout"));
      return el;
    }
    const ei = r.epochs ? Math.max(0, r.epochs.indexOf(pickEpoch(r.epochs, epoch))) : null;
    const pick = (v) => (ei === null ? v : v[ei]);
    const scores = pick(r.scores);
    const best = pick(r.best_layer);
    const bestP = pick(r.best_layer_p);
    const flat = scores.flat().filter(isNum);
    const lo = Math.min(...flat);
    const hi = Math.max(...flat);
    const lut = app.lut();
    const table = document.createElement("table");
    table.id = "compare-regions";
    const head = table.insertRow();
    head.append(text("th", r.epochs ? `epoch ${r.epochs[ei]}` : ""));
    r.layers.forEach((name) => head.append(text("th", name)));
    head.append(text("th", "best layer"));
    r.regions.forEach((region, i) => {
      const tr = table.insertRow();
      tr.append(text("th", region));
      r.layers.forEach((name, l) => {
        const v = scores[i][l];
        const td = text("td", app.fmt(v));
        if (isNum(v)) {
          const color = lut[app.lutIndex(v, lo, hi)];
          td.style.backgroundColor = rgb(color);
          td.style.color = color[0] * 0.3 + color[1] * 0.59 + color[2] * 0.11 > 140 ? "#000" : "#fff";
        }
        if (name === best[i]) td.classList.add("best");
        if (name === r.named_layer[i]) td.classList.add("named");
        tr.append(td);
      });
      const agrees = r.agrees[i] === 1 ? "agrees" : r.agrees[i] === 0 ? `named ${r.named_layer[i]}: disagrees` : "no named layer";
      const frac = bestP[i] == null ? "" : `best in ${Math.round(bestP[i] * 100)} %; `;
      tr.append(text("td", `${best[i]} (${frac}${agrees})`));
    });
    el.append(table, text("div", "bold: the region's best layer; outlined: the layer named after it", "muted"));
    return el;
  }

  // ------------------------------------------------------------------ the view
  async function render(app, gen) {
    const root = $("#view-compare");
    const out = document.createElement("div");
    const state = app.state;
    if (window.PASSAGE_STATIC) {
      out.append(text("p", "Comparisons are shown by `passage serve`, not in a static report."));
      root.replaceChildren(out);
      return;
    }
    const entries = [];
    for (const run of state.runs) {
      let list;
      try {
        list = await listFor(app, run);
      } catch (err) {
        continue;
      }
      for (const name of list.comparisons) entries.push({ run, name, regions: list.regions });
    }
    if (!app.isCurrent(gen)) return;
    if (!entries.length) {
      out.append(text("p", "No comparisons in these runs: run `passage compare RUN --rdms FILE` first."));
      root.replaceChildren(out);
      return;
    }
    const entry =
      entries.find((e) => e.run.id === state.run && e.name === state.compare) ||
      entries.find((e) => e.run.id === state.run) ||
      entries[0];
    const run = entry.run;
    state.run = run.id;
    state.compare = entry.name;
    const c = await app.json(`api/run/${run.id}/compare/${q(entry.name)}`);
    if (!app.isCurrent(gen)) return;
    if (!c.score && c.encoding_median) {
      c.score = c.encoding_median; // an encoding-only comparison: its median r per layer
      c.ci = null;
    }
    const epoch = pickEpoch(c.epochs, state.epoch);
    const ei = c.epochs ? c.epochs.indexOf(epoch) : null;
    const at = (v) => (ei === null ? v : v[ei]);
    const row = {
      score: at(c.score) || [],
      ci: (c.ci && at(c.ci)) || [],
      best: at(c.best_layer),
      bestP: at(c.best_layer_p),
    };
    if (!c.layers.includes(state.layer)) state.layer = row.best || c.layers[0];
    if (epoch !== null) state.epoch = epoch;
    const layer = state.layer;

    const head = document.createElement("div");
    head.className = "analysis-head";
    const select = document.createElement("select");
    select.id = "compare-select";
    for (const e of entries) {
      const label = state.runs.length > 1 ? `${e.run.id}: ${e.run.name} / ${e.name}` : e.name;
      select.add(new Option(label, `${e.run.id}/${e.name}`, false, e === entry));
    }
    select.addEventListener("change", () => {
      const [id, ...rest] = select.value.split("/");
      state.run = Number(id);
      state.compare = rest.join("/");
      state.layer = null;
      app.update();
    });
    const label = document.createElement("label");
    label.textContent = "Comparison ";
    label.append(select);
    const summary = text(
      "span",
      `${c.method} on ${c.distance} RDMs · ${c.references.length} reference(s) · ` +
        `${c.info.conditions} conditions` +
        (epoch === null ? "" : ` · epoch ${epoch}`) +
        (row.best
          ? ` · best layer ${row.best}` +
            (row.bestP == null ? "" : ` (stays best in ${Math.round(row.bestP * 100)} % of bootstrap samples)`)
          : ""),
      "muted"
    );
    summary.id = "compare-summary";
    head.append(label, summary);
    out.append(head);
    const grid = document.createElement("div");
    grid.className = "analysis-grid";
    out.append(grid);
    grid.append(profileCard(app, c, row, layer));
    if (c.epochs) grid.append(heatmapCard(app, c, layer, epoch));
    if (c.references.length) grid.append(await rdmCard(app, run, c, layer, epoch, gen));
    if (entry.regions) grid.append(await regionsCard(app, run, epoch));
    if (!app.isCurrent(gen)) return;
    root.replaceChildren(out);
    app.writeHash();
  }

  P.compare = { render };
})();
