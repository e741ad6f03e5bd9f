/* Passage viewer: the Unit view (what `passage visualize` stored for each unit of a layer).
 *
 * Loaded before app.js, which calls PASSAGE.unit.render(app, gen) and PASSAGE.unit.hash(app)
 * with what it shares (state, update, get: the API or the static report's scripts, the
 * colormap LUT, fmt, fitCss, card). Two pages, both linkable:
 *   #unit=LAYER            the layer page: every visualized channel's image, each a link;
 *   #unit=LAYER:CHANNEL    the unit page: its visualization, its top patterns with their
 *                          attribution overlays, its activation histogram over the run's
 *                          patterns, analyze's statistics and class means, and (training runs)
 *                          the visualization at each visualized epoch;
 * both with &epoch=E (training runs) and &run=R (several runs).
 *
 * The visualization is drawn pixel-exact on its canvas (CSS only zooms it): image and pixels
 * spaces byte = round((v - low) / (high - low) * 255) per RGB channel (gray replicated);
 * input space: the colormap over [min, max] of the image (as a 2-D array: a vector as one
 * row, higher ranks averaged over their trailing axes). Top patterns and thumbnails come as
 * those bytes from the server (unit_display.py, the same rule).
 */
"use strict";
(() => {
  const P = (window.PASSAGE = window.PASSAGE || {});
  const q = encodeURIComponent;
  const $ = (sel) => document.querySelector(sel);
  const HIST = { w: 380, h: 190, left: 40, right: 12, top: 16, bottom: 30 };
  const MARK = "#e8590c"; // top-pattern marks on the histogram
  const BAR = "#2f6fdb";
  const IMAGE_PX = 300; // the visualization's longest side on screen
  const TOP_PX = 112;
  const GRID_PX = 112;
  const STRIP_PX = 96;

  const lists = new Map(); // run id|version -> promise of the features list
  const payloads = new Map(); // url|version -> promise (small LRU)
  let overlayOn = true;

  function text(tag, content, className) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (className) el.className = className;
    return el;
  }

  const num = (v) => (v === null || v === undefined ? NaN : Number(v));
  const epochPart = (epoch) => (epoch === null ? "b" : "e" + epoch);

  function bytesOf(b64) {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }
  const floatsOf = (b64) => new Float32Array(bytesOf(b64).buffer);

  function load(app, run, path, key) {
    const id = `${run.id}|${run.version}|${path}`;
    if (!payloads.has(id)) {
      const promise = app.get(path, key);
      promise.catch(() => payloads.delete(id));
      payloads.set(id, promise);
      while (payloads.size > 80) payloads.delete(payloads.keys().next().value);
    }
    return payloads.get(id);
  }

  function listFor(app, run) {
    const id = `${run.id}|${run.version}`;
    if (!lists.has(id)) {
      const promise = app.get(`api/run/${run.id}/features`, `r${run.id}/features`);
      promise.catch(() => lists.delete(id));
      lists.set(id, promise);
    }
    return lists.get(id);
  }

  const atPart = (epoch) => (epoch === null ? "" : `&epoch=${epoch}`);
  const gridOf = (app, run, layer, epoch) =>
    load(
      app,
      run,
      `api/run/${run.id}/features-grid?layer=${q(layer.name)}${atPart(epoch)}`,
      `r${run.id}/units/${layer.dir}/${epochPart(epoch)}/grid`
    );
  const unitOf = (app, run, layer, channel, epoch) =>
    load(
      app,
      run,
      `api/run/${run.id}/unit?layer=${q(layer.name)}&channel=${channel}${atPart(epoch)}`,
      `r${run.id}/units/${layer.dir}/${epochPart(epoch)}/c${channel}`
    );
  const epochsOf = (app, run, layer, channel) =>
    load(
      app,
      run,
      `api/run/${run.id}/unit-epochs?layer=${q(layer.name)}&channel=${channel}`,
      `r${run.id}/units/${layer.dir}/c${channel}/epochs`
    );

  // ------------------------------------------------------------------ links
  /** A layer name as written in the hash: percent-encoded, but '/' and ':' kept readable. */
  const hashName = (name) => q(name).replace(/%2F/g, "/").replace(/%3A/g, ":");

  function link(app, run, layerName, channel, epoch) {
    let h = "#unit=" + hashName(layerName) + (channel === null || channel === undefined ? "" : ":" + channel);
    if (epoch !== null && epoch !== undefined) h += `&epoch=${epoch}`;
    if (app.state.runs.length > 1 || run.id !== 0) h += `&run=${run.id}`;
    return h;
  }

  /** The hash of the view shown (app.js writes it). */
  function hash(app) {
    const s = app.state;
    const run = s.runs[s.run] || s.runs[0];
    if (!s.unitRef || !run) return "#view=unit";
    const e = s.unitEpoch === undefined ? null : s.unitEpoch;
    let h = "#unit=" + s.unitRef.split(":").map(hashName).join(":");
    if (e !== null) h += `&epoch=${e}`;
    if (s.runs.length > 1 || run.id !== 0) h += `&run=${run.id}`;
    return h;
  }

  /** "LAYER:C" -> [layer, C] when LAYER is visualized; "LAYER" -> [layer, null]. */
  function parseRef(ref, layers) {
    if (ref === null || ref === undefined) return null;
    const byName = new Map(layers.map((l) => [l.name, l]));
    const m = /^(.*):(\d+)$/.exec(ref);
    if (m && byName.has(m[1])) return [byName.get(m[1]), Number(m[2])];
    if (byName.has(ref)) return [byName.get(ref), null];
    return undefined;
  }

  /** The visualized epoch shown for the chosen one: itself, else the latest before, else the last. */
  function pickEpoch(entries, chosen) {
    const epochs = entries.map((v) => v.epoch);
    if (epochs.length === 1 && epochs[0] === null) return null;
    if (chosen === null || chosen === undefined) return epochs[epochs.length - 1];
    let best = null;
    for (const e of epochs) if (e <= chosen) best = e;
    return best === null ? epochs[0] : best;
  }

  /** An anchor to a layer's page for the pattern view's cell titles (null: not visualized). */
  function layerLink(app, run, layerName) {
    if (!(run.features || []).includes(layerName)) return null;
    const a = text("a", layerName, "layer-link");
    a.href = link(app, run, layerName, null, null);
    a.title = `unit pages of ${layerName}: what each channel wants to see`;
    return a;
  }

  // ------------------------------------------------------------------ drawing
  const isRgb = (space, shape) =>
    (space === "image" || space === "pixels") && shape.length === 3 && (shape[2] === 1 || shape[2] === 3);

  /** A non-image array as drawn: (L,) -> (1, L), (H, W) as it is, higher ranks averaged. */
  function asPlane(values, shape) {
    if (shape.length <= 1) return { h: 1, w: shape.length ? shape[0] : 1, vals: values };
    const [h, w] = shape;
    if (shape.length === 2) return { h, w, vals: values };
    const d = values.length / (h * w);
    const vals = new Float64Array(h * w);
    for (let i = 0; i < h * w; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += values[i * d + k];
      vals[i] = s / d;
    }
    return { h, w, vals };
  }

  /** The stored float image on `canvas`, one canvas pixel per image pixel; what it drew. */
  function drawImage(app, canvas, values, shape, space, low, high) {
    const rgb = isRgb(space, shape);
    const plane = rgb ? null : asPlane(values, shape);
    const h = rgb ? shape[0] : plane.h;
    const w = rgb ? shape[1] : plane.w;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const px = img.data;
    let lo = low;
    let hi = high;
    if (rgb) {
      const c = shape[2];
      for (let i = 0, o = 0; i < h * w; i++, o += 4) {
        for (let k = 0; k < 3; k++) {
          const v = values[i * c + (c === 1 ? 0 : k)];
          px[o + k] = Number.isFinite(v) ? app.lutIndex(v, low, high) : app.BAD_RGB[k];
        }
        px[o + 3] = 255;
      }
    } else {
      [lo, hi] = app.finiteRange(plane.vals);
      const lut = app.lut();
      for (let i = 0, o = 0; i < h * w; i++, o += 4) {
        const v = plane.vals[i];
        const c = Number.isFinite(v) ? lut[app.lutIndex(v, lo, hi)] : app.BAD_RGB;
        px[o] = c[0];
        px[o + 1] = c[1];
        px[o + 2] = c[2];
        px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.space = space;
    canvas.dataset.lo = lo;
    canvas.dataset.hi = hi;
    return { rgb, plane, w, h, lo, hi };
  }

  /** Display bytes from the server: RGB (h, w, 3) or colormap indices (h, w), optionally
   * with an attribution mask (h, w) of 0..255 blended over in the overlay colours. */
  function drawCodes(app, canvas, codes, shape, overlay, mask) {
    const [h, w] = shape;
    const rgb = shape.length === 3;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const px = img.data;
    const lut = app.lut();
    for (let i = 0, o = 0; i < h * w; i++, o += 4) {
      let r, g, b;
      if (rgb) [r, g, b] = [codes[i * 3], codes[i * 3 + 1], codes[i * 3 + 2]];
      else if (mask && overlay) r = g = b = codes[i]; // grey under the overlay, as .top.png
      else [r, g, b] = lut[codes[i]];
      if (mask && overlay) {
        const m = mask[i];
        const a = (overlay.alpha * m) / 255;
        const c = overlay.lut[m];
        r = Math.round(r * (1 - a) + c[0] * a);
        g = Math.round(g * (1 - a) + c[1] * a);
        b = Math.round(b * (1 - a) + c[2] * a);
      }
      px[o] = r;
      px[o + 1] = g;
      px[o + 2] = b;
      px[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function readout(app, canvas, drawn, values, shape, target) {
    canvas.addEventListener("mousemove", (e) => {
      const x = Math.floor((e.offsetX * drawn.w) / canvas.clientWidth);
      const y = Math.floor((e.offsetY * drawn.h) / canvas.clientHeight);
      if (x < 0 || y < 0 || x >= drawn.w || y >= drawn.h) return;
      if (drawn.rgb) {
        const c = shape[2];
        const vals = Array.from({ length: c }, (_, k) => app.fmt(values[(y * drawn.w + x) * c + k]));
        target.textContent = `[${y}, ${x}] = ${vals.join(", ")}`;
      } else {
        target.textContent = `[${y}, ${x}] = ${app.fmt(drawn.plane.vals[y * drawn.w + x])}`;
      }
    });
    canvas.addEventListener("mouseleave", () => (target.textContent = target.dataset.idle || ""));
  }

  // ------------------------------------------------------------------ the layer page
  function headFor(app, runs, run, layers, layer, entries, epoch, channel) {
    const head = document.createElement("div");
    head.className = "analysis-head unit-head";
    if (runs.length > 1) {
      const sel = document.createElement("select");
      sel.id = "unit-run";
      for (const r of runs) sel.add(new Option(`${r.id}: ${r.name}`, r.id, false, r.id === run.id));
      sel.addEventListener("change", () => go(app, Number(sel.value), null, null));
      head.append(sel);
    }
    const label = text("label", "Layer ");
    const sel = document.createElement("select");
    sel.id = "unit-layer";
    for (const l of layers) sel.add(new Option(l.name, l.name, false, l === layer));
    sel.addEventListener("change", () => go(app, run.id, sel.value, epoch));
    label.append(sel);
    head.append(label);
    if (epoch !== null) {
      const el = text("label", "Visualized at epoch ");
      const es = document.createElement("select");
      es.id = "unit-epoch";
      for (const v of entries) es.add(new Option(String(v.epoch), v.epoch, false, v.epoch === epoch));
      es.addEventListener("change", () => {
        app.state.epoch = Number(es.value);
        app.update();
      });
      el.append(es);
      head.append(el);
    }
    if (channel !== null) {
      const up = text("a", `all units of ${layer.name}`, "unit-up");
      up.id = "unit-up";
      up.href = link(app, run, layer.name, null, epoch);
      head.prepend(up);
    }
    return head;
  }

  function go(app, runId, layerName, epoch) {
    const s = app.state;
    s.run = runId;
    s.unitRef = layerName;
    if (epoch !== undefined) s.epoch = epoch;
    app.update();
  }

  function settingsText(app, st) {
    if (!st) return "";
    const parts = [`${st.steps} steps`, `seed ${st.seed}`, `${st.space} space`];
    if (st.space !== "pixels") parts.push(`range ${app.fmt(st.low)} to ${app.fmt(st.high)}`);
    if (st.preprocess) parts.push(`preprocess ${st.preprocess}`);
    return parts.join(" · ");
  }

  const NOT_IN_REPORT = "not in this report: it holds unit pages up to its size budget (passage report --max-mb)";

  async function layerPage(app, gen, run, list, layer, epoch, out) {
    const entry = layer.visualized.find((v) => v.epoch === epoch);
    const title = text("h2", `${layer.name} · ${entry.channels.length} unit(s)`, "unit-title layer-title");
    title.id = "unit-title";
    out.append(title);
    if (entry.grid_in_report === false) {
      out.append(text("p", `the grid of ${layer.name} is ${NOT_IN_REPORT}`, "unit-missing"));
      return;
    }
    const g = await gridOf(app, run, layer, epoch);
    if (!app.isCurrent(gen)) return;
    const held = entry.in_report ? new Set(entry.in_report) : null;
    out.append(text("p", settingsText(app, entry.settings), "muted unit-summary"));
    const grid = document.createElement("div");
    grid.className = "unit-grid";
    grid.id = "unit-grid";
    const bytes = g.thumbs ? bytesOf(g.thumbs) : new Uint8Array(0);
    const size = g.thumb_shape.reduce((a, b) => a * b, 1);
    g.channels.forEach((c, i) => {
      const a = document.createElement("a");
      a.className = "unit-tile";
      a.href = link(app, run, layer.name, c, epoch);
      a.dataset.channel = c;
      const canvas = document.createElement("canvas");
      drawCodes(app, canvas, bytes.subarray(i * size, (i + 1) * size), g.thumb_shape, null, null);
      app.fitCss(canvas, GRID_PX);
      const act = num(g.activation[i]);
      const best = num(g.dataset_activation[i]);
      const cap = text("span", `c${c}`, "unit-cap");
      const val = text("span", app.fmt(act), "unit-val");
      a.title = `unit ${c}: the visualization reaches ${app.fmt(act)}` + (Number.isFinite(best) ? `; the best pattern ${app.fmt(best)}` : "");
      if (held && !held.has(c)) {
        a.classList.add("absent");
        a.title += ` (its page is ${NOT_IN_REPORT})`;
      }
      a.append(canvas, cap, val);
      grid.append(a);
    });
    out.append(grid);
  }

  // ------------------------------------------------------------------ the unit page
  function imageCard(app, u) {
    const el = app.card("Feature visualization");
    el.classList.add("unit-image-card");
    const canvas = document.createElement("canvas");
    canvas.id = "unit-image";
    const values = floatsOf(u.image.b64);
    const drawn = drawImage(app, canvas, values, u.image.shape, u.space, u.low, u.high);
    canvas.dataset.low = u.low;
    canvas.dataset.high = u.high;
    app.fitCss(canvas, IMAGE_PX);
    const ro = text("div", "", "readout");
    ro.dataset.idle = `${u.space} space, ${drawn.rgb ? `${app.fmt(u.low)} to ${app.fmt(u.high)}` : `colormap ${app.fmt(drawn.lo)} to ${app.fmt(drawn.hi)}`}`;
    ro.textContent = ro.dataset.idle;
    readout(app, canvas, drawn, values, u.image.shape, ro);
    const facts = document.createElement("div");
    facts.className = "unit-facts";
    facts.id = "unit-facts";
    const act = num(u.activation);
    const best = num(u.dataset_activation);
    facts.append(text("div", `activation reached ${app.fmt(act)}`, "unit-act"));
    if (Number.isFinite(best)) {
      const ratio = best !== 0 ? ` (${app.fmt(act / best)}×)` : "";
      facts.append(text("div", `best over the run's patterns ${app.fmt(best)}${ratio}`, "muted"));
    } else facts.append(text("div", "no analysis: run `passage analyze` for the dataset's best", "muted"));
    el.append(canvas, ro, facts);
    return el;
  }

  function topCard(app, run, layer, u, overlay) {
    const el = app.card("Top patterns and where the unit looks");
    el.classList.add("unit-top-card");
    if (!u.top) {
      el.append(text("p", "No top patterns: run `passage analyze`, then `passage visualize` again.", "muted"));
      return el;
    }
    const toggle = text("label", " attribution overlay", "muted unit-toggle");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = "unit-overlay";
    box.checked = overlayOn;
    toggle.prepend(box);
    const thumbs = document.createElement("div");
    thumbs.className = "thumbs unit-thumbs";
    const canvases = [];
    const paint = () =>
      canvases.forEach(([canvas, k]) => {
        const inp = u.top.inputs[k];
        const mask = overlayOn ? bytesOf(u.top.masks[k].codes) : null;
        drawCodes(app, canvas, bytesOf(inp.codes), inp.shape, overlay, mask);
        app.fitCss(canvas, TOP_PX);
      });
    u.top.index.forEach((p, k) => {
      const wrap = document.createElement("div");
      wrap.className = "thumb unit-pattern";
      wrap.dataset.pattern = p;
      const canvas = document.createElement("canvas");
      canvases.push([canvas, k]);
      wrap.append(canvas, text("span", `#${p} · ${app.fmt(num(u.top.value[k]))}`));
      wrap.title = `pattern ${p}: activation ${app.fmt(num(u.top.value[k]))}; click to open it`;
      wrap.addEventListener("click", () => {
        const s = app.state;
        s.view = "pattern";
        s.pattern = p;
        s.layer = layer.name;
        app.update();
      });
      thumbs.append(wrap);
    });
    paint();
    box.addEventListener("change", () => {
      overlayOn = box.checked;
      paint();
    });
    el.append(toggle, thumbs);
    return el;
  }

  function histCard(app, u) {
    const el = app.card("Activation over the run's patterns");
    const hgm = u.histogram || {};
    if (!hgm.edges || !hgm.edges.length) {
      el.append(text("p", hgm.damaged || hgm.missing || "no finite activation", "muted"));
      return el;
    }
    const { w: W, h: H, left, right, top, bottom } = HIST;
    const { canvas, ctx } = app.sharpCanvas(W, H);
    canvas.id = "unit-hist";
    const edges = hgm.edges;
    const counts = hgm.counts;
    const marks = ((u.top && u.top.value) || []).map(num).filter(Number.isFinite);
    const lo = edges[0];
    const hi = edges[edges.length - 1] > lo ? edges[edges.length - 1] : lo + 1;
    const pw = W - left - right;
    const ph = H - top - bottom;
    const xOf = (v) => left + ((v - lo) / (hi - lo)) * pw;
    const peak = Math.max(1, ...counts);
    ctx.fillStyle = BAR;
    counts.forEach((c, i) => {
      const x0 = xOf(edges[i]);
      const x1 = xOf(edges[i + 1]);
      const bh = (c / peak) * ph;
      ctx.fillRect(x0, top + ph - bh, Math.max(1, x1 - x0 - 1), bh);
    });
    ctx.strokeStyle = "#d9dee7";
    ctx.strokeRect(left, top, pw, ph);
    ctx.strokeStyle = MARK;
    ctx.lineWidth = 1.5;
    for (const v of marks) {
      const x = Math.round(Math.min(Math.max(xOf(v), left), left + pw)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + ph);
      ctx.stroke();
    }
    ctx.fillStyle = "#667085";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(app.fmt(lo), left, H - 12);
    ctx.textAlign = "right";
    ctx.fillText(app.fmt(edges[edges.length - 1]), left + pw, H - 12);
    ctx.fillText(String(peak), left - 4, top + 8);
    ctx.fillText("0", left - 4, top + ph);
    canvas.dataset.plot = [left, top, pw, ph].join(",");
    canvas.dataset.lo = lo;
    canvas.dataset.hi = hi;
    canvas.dataset.marks = marks.join(",");
    const note = `${hgm.patterns} patterns, ${counts.length} bins` + (hgm.left_out ? `, ${hgm.left_out} without a finite value` : "");
    const legend = text("div", "", "muted unit-legend");
    const sw = text("span", "", "swatch");
    legend.append(sw, ` top patterns' activations · ${note}`);
    el.append(canvas, legend);
    return el;
  }

  function statsCard(app, u) {
    const el = app.card("Statistics");
    const table = document.createElement("table");
    table.className = "unit-stats";
    table.id = "unit-stats";
    const row = (k, v) => {
      const tr = document.createElement("tr");
      tr.append(text("th", k), text("td", v));
      table.append(tr);
    };
    const a = u.analysis;
    row("activation reached", app.fmt(num(u.activation)));
    if (a) {
      row("best pattern", app.fmt(num(a.top_value[0])) + (a.top_index[0] >= 0 ? ` (#${a.top_index[0]})` : ""));
      row("channel mean", app.fmt(num(a.channel_mean)));
      row("channel std", app.fmt(num(a.channel_std)));
      row("fraction positive", app.fmt(num(a.channel_frac_positive)));
      row("dead", a.dead ? "yes (never positive)" : "no");
    }
    row("steps", String(u.steps));
    row("seed", String(u.seed));
    if (u.settings && u.settings.lr !== null && u.settings.lr !== undefined) row("learning rate", app.fmt(num(u.settings.lr)));
    row("space", u.space + (u.preprocess ? ` (${u.preprocess})` : ""));
    row("range", `${app.fmt(u.low)} to ${app.fmt(u.high)}`);
    if (!a) el.append(text("p", "No analysis of this layer: `passage analyze RUN` adds the statistics.", "muted"));
    el.append(table);
    return el;
  }

  function classCard(app, a) {
    const el = app.card("Class means");
    const box = document.createElement("div");
    box.className = "unit-classes";
    box.id = "unit-classes";
    const vals = a.class_channel_mean.map(num);
    const top = Math.max(1e-12, ...vals.filter(Number.isFinite).map(Math.abs));
    const best = vals.indexOf(Math.max(...vals.filter(Number.isFinite)));
    vals.forEach((v, i) => {
      const r = document.createElement("div");
      r.className = "unit-class";
      const bar = text("span", "", "bar" + (v < 0 ? " neg" : "") + (i === best ? " best" : ""));
      bar.style.width = `${Number.isFinite(v) ? Math.round((Math.abs(v) / top) * 160) : 0}px`;
      r.append(text("span", a.class_names[i], "name"), bar, text("span", app.fmt(v), "val"));
      box.append(r);
    });
    el.append(box);
    return el;
  }

  async function stripCard(app, run, layer, channel, epoch) {
    const el = app.card("Across training");
    const rows = (await epochsOf(app, run, layer, channel)).epochs;
    const strip = document.createElement("div");
    strip.className = "unit-strip";
    strip.id = "unit-strip";
    for (const r of rows) {
      const wrap = document.createElement("a");
      wrap.className = "thumb unit-epoch" + (r.epoch === epoch ? " active" : "");
      wrap.dataset.epoch = r.epoch;
      wrap.href = link(app, run, layer.name, channel, r.epoch);
      const canvas = document.createElement("canvas");
      drawImage(app, canvas, floatsOf(r.image.b64), r.image.shape, r.space, r.low, r.high);
      app.fitCss(canvas, STRIP_PX);
      wrap.append(canvas, text("span", `epoch ${r.epoch} · ${app.fmt(num(r.activation))}`));
      if (r.top_index) wrap.title = `top patterns at epoch ${r.epoch}: ${r.top_index.join(", ")}`;
      strip.append(wrap);
    }
    el.append(strip);
    return el;
  }

  async function unitPage(app, gen, run, list, layer, channel, epoch, out) {
    const entry = layer.visualized.find((v) => v.epoch === epoch);
    const channels = entry ? entry.channels : [];
    const at = channels.indexOf(channel);
    const nav = document.createElement("div");
    nav.className = "unit-nav";
    const title = text("h2", `${layer.name} · unit ${channel}`, "unit-title");
    title.id = "unit-title";
    const prev = text("a", "◀", "unit-step");
    const next = text("a", "▶", "unit-step");
    prev.id = "unit-prev";
    next.id = "unit-next";
    if (at > 0) prev.href = link(app, run, layer.name, channels[at - 1], epoch);
    else prev.classList.add("off");
    if (at >= 0 && at < channels.length - 1) next.href = link(app, run, layer.name, channels[at + 1], epoch);
    else next.classList.add("off");
    nav.append(prev, title, next);
    out.append(nav);
    if (at < 0) {
      const where = epoch === null ? "" : ` at epoch ${epoch}`;
      out.append(text("p", `unit ${channel} of ${layer.name} is not visualized${where}; run \`passage visualize RUN --layers ${layer.name} --channels ${channel}\``, "unit-missing"));
      return;
    }
    if (entry.in_report && !entry.in_report.includes(channel)) {
      out.append(text("p", `unit ${channel} of ${layer.name} is ${NOT_IN_REPORT}`, "unit-missing"));
      return;
    }
    const u = await unitOf(app, run, layer, channel, epoch);
    if (!app.isCurrent(gen)) return;
    const grid = document.createElement("div");
    grid.className = "analysis-grid unit-cards";
    grid.append(imageCard(app, u), topCard(app, run, layer, u, list.overlay), histCard(app, u), statsCard(app, u));
    if (u.analysis && u.analysis.class_channel_mean) grid.append(classCard(app, u.analysis));
    if (epoch !== null && layer.visualized.length > 1) grid.append(await stripCard(app, run, layer, channel, epoch));
    out.append(grid);
  }

  // ------------------------------------------------------------------ the view
  async function render(app, gen) {
    const root = $("#view-unit");
    const s = app.state;
    const out = document.createElement("div");
    const runs = s.runs.filter((r) => (r.features || []).length);
    if (!runs.length) {
      out.append(text("p", "No feature visualizations in these runs: run `passage visualize RUN` first."));
      root.replaceChildren(out);
      return;
    }
    // the chosen run; when it lacks the hash's layer and another run has it, that run
    const names = (r) => r.features || [];
    const named = (r) => s.unitRef !== null && parseRef(s.unitRef, names(r).map((name) => ({ name }))) !== undefined;
    let run = runs.find((r) => r.id === s.run) || runs[0];
    if (s.unitRef !== null && !named(run)) run = runs.find(named) || run;
    s.run = run.id;
    const list = await listFor(app, run);
    if (!app.isCurrent(gen)) return;
    const layers = list.layers.filter((l) => l.visualized.length);
    let ref = parseRef(s.unitRef, layers);
    if (ref === undefined) {
      out.append(text("p", `No unit page for ${JSON.stringify(s.unitRef)}: visualized layers are ${layers.map((l) => l.name).join(", ")}.`, "unit-missing"));
      ref = null;
    }
    if (ref === null) {
      const layer = layers.find((l) => l.name === s.layer) || layers[0];
      ref = [layer, null];
    }
    const [layer, channel] = ref;
    const epoch = pickEpoch(layer.visualized, s.epoch);
    s.unitRef = channel === null ? layer.name : `${layer.name}:${channel}`;
    s.unitEpoch = epoch;
    s.layer = layer.name;
    if (epoch !== null) s.epoch = epoch;
    out.prepend(headFor(app, runs, run, layers, layer, layer.visualized, epoch, channel));
    try {
      if (channel === null) await layerPage(app, gen, run, list, layer, epoch, out);
      else await unitPage(app, gen, run, list, layer, channel, epoch, out);
    } catch (err) {
      out.append(text("p", `could not load: ${err.message}`, "unit-missing"));
    }
    if (!app.isCurrent(gen)) return;
    root.replaceChildren(out);
    app.writeHash();
  }

  P.unit = { render, hash, layerLink, link };
})();
