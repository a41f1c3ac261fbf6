/* conformance HTML report: filters, sorting, the case panel and its plots.
 * Reads the run from <script id="report-data"> (JSON, gzip-compressed, base64); the grid and tables are
 * already in the page. Plots use uPlot (inlined before this file) and a plain canvas for heatmaps. */
(function () {
  "use strict";
  async function loadData() {
    const node = document.getElementById("report-data");
    const bytes = Uint8Array.from(atob(node.textContent.trim()), (ch) => ch.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }
  loadData().then(main, (err) => {
    document.getElementById("controls").textContent = "This browser cannot read the report's data (" + err + "); the grid and tables still show the results.";
    document.body.dataset.ready = "error";
  });

function main(DATA) {
  const ADAPTERS = DATA.adapter_order;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e6550d", "#3182bd", "#843c39"];
  const colorOf = (a) => PALETTE[Math.max(0, ADAPTERS.indexOf(a)) % PALETTE.length];
  const RANK = { error: 0, xpass: 1, diverge: 2, "expected-divergence": 3, unsupported: 5, skipped: 6, pass: 4 };

  // ---------- helpers ----------
  const num = (v) => (v === "inf" ? Infinity : v === "-inf" ? -Infinity : v === "nan" ? NaN : v);
  function fmt(v, digits) {
    v = num(v);
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    return Number(v.toPrecision(digits || 4)).toString();
  }
  const esc = (s) => String(s === undefined || s === null ? "" : s)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  const chip = (status) => `<span class="chip s-${RANK[status] === undefined ? "other" : status}">${esc(status)}</span>`;
  const shape = (s) => (s ? "(" + s.join(", ") + ")" : "–");
  function el(tag, attrs, html) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (html !== undefined) e.innerHTML = html;
    return e;
  }
  const modeText = (m) => (m && typeof m === "object" ? `${m.framework_default} (framework default)` : String(m));

  // ---------- grid: filters and sorting ----------
  const grid = document.getElementById("grid");
  const body = grid.tBodies[0];
  const rows = Array.from(body.rows);
  const ops = Array.from(new Set(rows.map((r) => r.dataset.op))).sort();
  const statuses = DATA.statuses.filter((s) => grid.querySelector(`td.cell[data-status="${CSS.escape(s)}"]`));
  const state = { text: "", op: "", statuses: new Set(statuses), adapters: new Set(ADAPTERS), sort: "case", dir: 1 };

  const controls = document.getElementById("controls");
  controls.innerHTML = `
    <label>case <input id="f-text" type="search" placeholder="id contains…" size="22"></label>
    <label>operator <select id="f-op"><option value="">all</option>${ops.map((o) => `<option>${esc(o)}</option>`).join("")}</select></label>
    <fieldset id="f-status"><legend>status</legend>${statuses.map((s) =>
      `<label><input type="checkbox" value="${esc(s)}" checked> ${chip(s)}</label>`).join("")}</fieldset>
    <details id="f-adapters"><summary>adapters (<span id="f-ad-count">${ADAPTERS.length}</span> of ${ADAPTERS.length})</summary>
      <button type="button" data-all="1">all</button> <button type="button" data-all="0">none</button>
      ${ADAPTERS.map((a) => `<label><input type="checkbox" value="${esc(a)}" checked> <code>${esc(a)}</code></label>`).join(" ")}
    </details>
    <label>sort <select id="f-sort"><option value="case">case id</option><option value="op">operator</option>
      <option value="problems">most problems first</option><option value="error">largest error first</option></select></label>
    <span id="f-shown" class="hint"></span>`;

  function cellsOf(row) { return Array.from(row.querySelectorAll("td.cell")); }

  function applyFilters() {
    const allStatuses = state.statuses.size === statuses.length;
    grid.querySelectorAll("[data-adapter]").forEach((c) => c.classList.toggle("col-hidden", !state.adapters.has(c.dataset.adapter)));
    let shown = 0;
    for (const row of rows) {
      let ok = (!state.op || row.dataset.op === state.op) && (!state.text || row.dataset.case.includes(state.text));
      let any = false;
      for (const c of cellsOf(row)) {
        const match = state.statuses.has(c.dataset.status);
        c.classList.toggle("dim", !allStatuses && !match);
        if (match && state.adapters.has(c.dataset.adapter)) any = true;
      }
      ok = ok && (allStatuses || any);
      row.classList.toggle("hidden", !ok);
      if (ok) shown++;
    }
    document.getElementById("f-shown").textContent = `showing ${shown} of ${rows.length} cases`;
    document.getElementById("f-ad-count").textContent = state.adapters.size;
    document.querySelectorAll("#counts tbody tr").forEach((r) => r.classList.toggle("dim", !state.adapters.has(r.dataset.adapter)));
  }

  const mag = (c) => (c && c.dataset.mag !== "" && c.dataset.mag !== undefined ? Number(c.dataset.mag) : -1);
  function sortKey(row) {
    const cells = cellsOf(row).filter((c) => state.adapters.has(c.dataset.adapter));
    if (state.sort === "problems") return -cells.filter((c) => ["diverge", "error", "xpass"].includes(c.dataset.status)).length;
    if (state.sort === "error") return -Math.max(-1, ...cells.map(mag));
    if (state.sort.startsWith("adapter:")) {
      const c = row.querySelector(`td.cell[data-adapter="${CSS.escape(state.sort.slice(8))}"]`);
      return c ? [-mag(c), RANK[c.dataset.status] ?? 9] : [1, 9];
    }
    if (state.sort === "op") return row.dataset.op;
    return 0;
  }
  function cmp(a, b) {
    if (Array.isArray(a)) { for (let i = 0; i < a.length; i++) { const d = cmp(a[i], b[i]); if (d) return d; } return 0; }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function applySort() {
    const keyed = rows.map((r) => [sortKey(r), r.dataset.case, r]);
    keyed.sort((x, y) => state.dir * (cmp(x[0], y[0]) || cmp(x[1], y[1])));
    keyed.forEach(([, , r]) => body.appendChild(r));
    grid.querySelectorAll("thead th").forEach((th) => th.classList.toggle("sorted",
      (th.dataset.adapter && state.sort === "adapter:" + th.dataset.adapter) || th.dataset.sort === state.sort));
  }

  document.getElementById("f-text").addEventListener("input", (e) => { state.text = e.target.value.trim(); applyFilters(); });
  document.getElementById("f-op").addEventListener("change", (e) => { state.op = e.target.value; applyFilters(); });
  document.getElementById("f-status").addEventListener("change", (e) => {
    e.target.checked ? state.statuses.add(e.target.value) : state.statuses.delete(e.target.value); applyFilters();
  });
  const adBox = document.getElementById("f-adapters");
  adBox.addEventListener("change", (e) => {
    e.target.checked ? state.adapters.add(e.target.value) : state.adapters.delete(e.target.value); applyFilters();
  });
  adBox.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
    const on = b.dataset.all === "1";
    adBox.querySelectorAll("input").forEach((i) => { i.checked = on; });
    state.adapters = new Set(on ? ADAPTERS : []); applyFilters();
  }));
  document.getElementById("f-sort").addEventListener("change", (e) => { state.sort = e.target.value; state.dir = 1; applySort(); });
  grid.tHead.addEventListener("click", (e) => {
    const th = e.target.closest("th");
    if (!th) return;
    const key = th.dataset.adapter ? "adapter:" + th.dataset.adapter : th.dataset.sort;
    if (!key) return;
    state.dir = state.sort === key ? -state.dir : 1;
    state.sort = key;
    applySort();
  });

  // ---------- the case panel ----------
  const panel = document.getElementById("panel");
  const panelBody = document.getElementById("panel-body");
  let charts = [];
  function closePanel() {
    panel.hidden = true;
    charts.forEach((c) => c.destroy()); charts = [];
    grid.querySelectorAll("td.current").forEach((c) => c.classList.remove("current"));
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  }
  document.getElementById("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !panel.hidden) closePanel(); });
  body.addEventListener("click", (e) => {
    const c = e.target.closest("td.cell");
    if (c && c.dataset.status !== "missing") openCell(c.closest("tr").dataset.case, c.dataset.adapter);
  });
  body.addEventListener("keydown", (e) => {
    const c = e.target.closest("td.cell");
    if (c && e.key === "Enter") openCell(c.closest("tr").dataset.case, c.dataset.adapter);
  });

  function openCell(caseId, adapter) {
    const r = (DATA.results[caseId] || {})[adapter];
    const c = DATA.cases[caseId] || {};
    if (!r) return;
    charts.forEach((ch) => ch.destroy()); charts = [];
    grid.querySelectorAll("td.current").forEach((x) => x.classList.remove("current"));
    const row = rows.find((x) => x.dataset.case === caseId);
    const cell = row && row.querySelector(`td.cell[data-adapter="${CSS.escape(adapter)}"]`);
    if (cell) cell.classList.add("current");
    history.replaceState(null, "", "#" + encodeURIComponent(caseId) + "|" + encodeURIComponent(adapter));
    panelBody.innerHTML = panelHtml(caseId, adapter, r, c);
    panel.hidden = false;
    panel.scrollTop = 0;
    panelBody.querySelectorAll(".others [data-adapter]").forEach((b) => b.addEventListener("click", () => openCell(caseId, b.dataset.adapter)));
    const copy = panelBody.querySelector("button.copy");
    copy.addEventListener("click", () => {
      const text = r.repro;
      (navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject()).then(
        () => { copy.textContent = "copied"; },
        () => { const sel = getSelection(); sel.selectAllChildren(panelBody.querySelector(".cmd pre")); copy.textContent = "selected"; });
    });
    Object.entries(r.outputs || {}).forEach(([name, o]) => {
      const box = panelBody.querySelector(`.errplots[data-output="${CSS.escape(name)}"]`);
      if (box && o.error_map) errorPlots(box, o);
    });
    const ms = panelBody.querySelector(".msplots");
    if (ms) stepCharts(ms, caseId, adapter, true);
  }

  function panelHtml(caseId, adapter, r, c) {
    const h = [];
    h.push(`<h2><code>${esc(caseId)}</code></h2>`);
    h.push(`<p>${chip(r.status)} on <code>${esc(adapter)}</code> · op <b>${esc(c.op)}</b> · dtype ${esc(c.dtype)}` +
      (r.api ? ` · API <code>${esc(r.api)}</code>` : "") + ` · ${fmt(r.duration_s, 3)} s</p>`);
    h.push(`<p class="others">other adapters: ${ADAPTERS.filter((a) => (DATA.results[caseId] || {})[a]).map((a) =>
      `<button type="button" class="chip s-${esc(DATA.results[caseId][a].status)}" data-adapter="${esc(a)}"${a === adapter ? " disabled" : ""}>${esc(a)}</button>`).join(" ")}</p>`);
    if (r.status === "xpass") h.push(`<div class="xpass-flag"><b>Passed although declared as a known divergence.</b> The declaration may be stale: check it and remove it if the framework changed.</div>`);
    if (r.declared) {
      const d = r.declared;
      h.push(`<div class="declared"><b>Declared known divergence:</b> ${esc(d.reason)}` +
        (d.link ? ` · <a href="${esc(d.link)}" target="_blank" rel="noopener noreferrer">${esc(d.link)}</a>` : "") +
        (d.file ? ` · declared in <code>${esc(d.file)}${d.line ? ":" + esc(d.line) : ""}</code>` : "") + `</div>`);
    }
    if (r.diagnosis) {
      const dg = r.diagnosis;
      h.push(`<h3>Diagnosis</h3><div class="diagnosis"><b>${esc(dg.summary)}</b>`);
      if ((dg.matches || []).length) {
        h.push(`<table><thead><tr><th>variants</th><th>description</th><th>residual</th></tr></thead><tbody>` +
          dg.matches.map((m) => `<tr><td>${(m.variants || []).map((v) => `<code>${esc(v)}</code>`).join(" + ")}</td>` +
            `<td>${esc(m.description)}</td><td class="n">${fmt(m.residual)}</td></tr>`).join("") + `</tbody></table>`);
      }
      h.push(`</div>`);
    }
    if (r.message) {
      const label = { error: "Framework error", unsupported: "Why unsupported", skipped: "Why skipped" }[r.status] || "Message";
      h.push(`<h3>${label}</h3><div class="errmsg">${esc(r.message)}</div>`);
    }
    if ((r.notes || []).length) h.push(`<h3>Notes (translation)</h3><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>`);
    h.push(`<h3>Reproduce</h3><div class="cmd"><pre>${esc(r.repro)}</pre><button type="button" class="copy">copy</button></div>`);
    if ((c.steps || []).length > 1) h.push(`<h3>State over the steps</h3><div class="msplots"></div>`);
    h.push(outputsHtml(r));
    h.push(caseHtml(c));
    return h.join("\n");
  }

  function outputsHtml(r) {
    const outs = Object.entries(r.outputs || {});
    if (!outs.length) return "";
    const h = [`<h3>Outputs</h3><table><thead><tr><th>output</th><th>status</th><th>shape</th><th>dtype</th><th>atol</th><th>rtol</th>` +
      `<th>max abs err</th><th>max rel err</th><th>max ULP</th><th>mismatches</th><th>worst index: expected → actual</th></tr></thead><tbody>`];
    for (const [name, o] of outs) {
      const shp = o.actual_shape && o.actual_shape.join() !== o.expected_shape.join() ? `${shape(o.actual_shape)}, expected ${shape(o.expected_shape)}` : shape(o.expected_shape);
      const dt = o.actual_dtype && o.actual_dtype !== o.expected_dtype ? `${esc(o.actual_dtype)}, expected ${esc(o.expected_dtype)}` : esc(o.expected_dtype);
      h.push(`<tr><td><code>${esc(name)}</code></td><td>${chip(o.status === "not-produced" ? "unsupported" : o.status).replace(">unsupported<", ">not produced<")}</td>` +
        `<td>${shp}</td><td>${dt}</td><td class="n">${fmt(o.atol)}</td><td class="n">${fmt(o.rtol)}</td><td class="n">${fmt(o.max_abs_error)}</td>` +
        `<td class="n">${fmt(o.max_rel_error)}</td><td class="n">${fmt(o.max_ulp)}</td><td class="n">${fmt(o.mismatches)}/${fmt(o.size)}</td>` +
        `<td class="nw">${o.worst_index ? `[${o.worst_index.join(", ")}]: ${fmt(o.worst_expected, 8)} → ${fmt(o.worst_actual, 8)}` : "–"}</td></tr>`);
    }
    h.push(`</tbody></table><h4>Expected vs actual (first values, flattened)</h4>`);
    for (const [name, o] of outs) {
      const exp = o.expected_head || [], act = o.actual_head || [];
      if (!exp.length && !act.length) continue;
      const n = Math.max(exp.length, act.length);
      const cells = [];
      for (let i = 0; i < n; i++) {
        const e = num(exp[i]), a = num(act[i]);
        const bad = typeof e === "number" && typeof a === "number" && !(Math.abs(a - e) <= num(o.atol) + num(o.rtol) * Math.abs(e)) && !(isNaN(a) && isNaN(e)) && a !== e;
        cells.push(`<tr><td class="n">${i}</td><td class="n">${fmt(e, 8)}</td><td class="n${bad ? " bad" : ""}">${fmt(a, 8)}</td></tr>`);
      }
      h.push(`<details${o.status === "diverge" ? " open" : ""}><summary><code>${esc(name)}</code> (${o.size} values)` +
        `${o.message ? ` <span class="hint">${esc(o.message)}</span>` : ""}</summary><div class="plots errplots" data-output="${esc(name)}">` +
        `<table class="vals"><thead><tr><th>#</th><th>expected</th><th>actual</th></tr></thead><tbody>${cells.join("")}</tbody></table></div></details>`);
    }
    return h.join("\n");
  }

  function arrayRow(name, a) {
    if (!a || typeof a !== "object") return `<tr><td><code>${esc(name)}</code></td><td colspan="3">${esc(JSON.stringify(a))}</td></tr>`;
    const stats = a.min !== undefined ? `min ${fmt(a.min)} · max ${fmt(a.max)} · mean ${fmt(a.mean)}` : "";
    return `<tr><td><code>${esc(name)}</code></td><td>${shape(a.shape)}</td><td><code>[${(a.head || []).map((v) => fmt(v, 6)).join(", ")}` +
      `${a.shape && a.shape.reduce((x, y) => x * y, 1) > (a.head || []).length ? ", …" : ""}]</code></td><td>${stats}</td></tr>`;
  }

  function caseHtml(c) {
    const h = [`<h3>Case</h3>`];
    if (c.description) h.push(`<p>${esc(c.description)}</p>`);
    h.push(`<p class="hint">source: ${esc(c.source || "?")}${(c.tags || []).length ? " · tags: " + c.tags.map(esc).join(", ") : ""}` +
      `${c.path ? ` · <code>${esc(c.path)}${c.line ? ":" + c.line : ""}</code>` : ""}</p>`);
    const attrs = Object.entries(c.attributes || {});
    if (attrs.length) h.push(`<table><tbody>${attrs.map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(
      v && typeof v === "object" && "framework_default" in v ? `${JSON.stringify(v.framework_default)} (framework default)` : JSON.stringify(v))}</code></td></tr>`).join("")}</tbody></table>`);
    const arrays = [];
    Object.entries(c.params || {}).forEach(([k, v]) => arrays.push(arrayRow("param " + k, v)));
    Object.entries(c.state || {}).forEach(([k, v]) => arrays.push(arrayRow("state " + k, v)));
    (c.steps || []).forEach((s, i) => Object.entries(s.inputs || {}).forEach(([k, v]) =>
      arrays.push(arrayRow(`${c.steps.length > 1 ? `step ${i + 1} ` : ""}(${modeText(s.mode)}) ${k}`, v))));
    if (arrays.length) h.push(`<h4>Inputs (abridged)</h4><table><thead><tr><th>array</th><th>shape</th><th>first values</th><th>stats</th></tr></thead><tbody>${arrays.join("")}</tbody></table>`);
    h.push(`<h4>YAML</h4>` + (c.yaml ? `<pre class="yaml">${esc(c.yaml)}</pre>`
      : `<p class="hint">The case file was not readable when this report was rendered${c.path ? ` (<code>${esc(c.path)}:${esc(c.line)}</code>)` : ""}; the summary above is what the run stored.</p>`));
    return h.join("\n");
  }

  // ---------- plots ----------
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function viridis(t) {
    t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
    const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  function errorPlots(box, o) {
    const m = o.error_map;
    const vals = m.values.map(num);
    const [rowsN, colsN] = m.shape;
    const pos = vals.filter((v) => v > 0 && isFinite(v));
    const lo = pos.length ? Math.log10(Math.min(...pos)) : 0, hi = pos.length ? Math.log10(Math.max(...pos)) : 1;
    const span = hi - lo || 1;
    const cell = Math.max(1, Math.min(24, Math.floor(360 / colsN), Math.floor(260 / rowsN)));
    const canvas = el("canvas", { width: colsN * cell, height: rowsN * cell, class: "heat" });
    const g = canvas.getContext("2d");
    vals.forEach((v, i) => {
      g.fillStyle = !isFinite(v) ? "#ff00ff" : v > 0 ? viridis((Math.log10(v) - lo) / span) : "#f0f0f0";
      g.fillRect((i % colsN) * cell, Math.floor(i / colsN) * cell, cell, cell);
    });
    canvas.addEventListener("mousemove", (e) => {
      const c = Math.floor(e.offsetX / cell), r = Math.floor(e.offsetY / cell);
      canvas.title = `row ${r * m.block[0]}${m.block[0] > 1 ? "…" + ((r + 1) * m.block[0] - 1) : ""}, col ${c * m.block[1]}` +
        `${m.block[1] > 1 ? "…" + ((c + 1) * m.block[1] - 1) : ""}: |error| ${fmt(vals[r * colsN + c])}`;
    });
    const bar = el("canvas", { width: 120, height: 10 });
    const bg = bar.getContext("2d");
    for (let x = 0; x < 120; x++) { bg.fillStyle = viridis(x / 119); bg.fillRect(x, 0, 1, 10); }
    const heat = el("div", { class: "plot" }, `<div class="title">|actual − expected| of <code>${esc(o.name)}</code>: ` +
      `rows = leading axes ${shape(o.expected_shape.slice(0, -1))}, columns = last axis` +
      `${m.block[0] > 1 || m.block[1] > 1 ? `; max over ${m.block[0]}×${m.block[1]} blocks` : ""}</div>`);
    heat.appendChild(canvas);
    const leg = el("div", { class: "heat-legend" }, `<span>${fmt(Math.pow(10, lo), 2)}</span>`);
    leg.appendChild(bar);
    leg.insertAdjacentHTML("beforeend", `<span>${fmt(Math.pow(10, hi), 2)}</span><span>(log scale; grey 0, magenta non-finite)</span>`);
    heat.appendChild(leg);
    box.appendChild(heat);

    const hist = m.hist || {};
    if (hist.counts && hist.counts.length) {
      const xs = hist.counts.map((_, i) => hist.lo + i + 0.5);  // bar i covers [1e(lo+i), 1e(lo+i+1))
      const top = Math.max(...hist.counts);
      const wrap = el("div", { class: "plot" }, `<div class="title">log10 |error| over all ${o.size} values, per decade` +
        `${hist.zeros ? ` (+${hist.zeros} exact)` : ""}${hist.nonfinite ? ` (+${hist.nonfinite} non-finite)` : ""}; atol ${fmt(o.atol)}</div>`);
      box.appendChild(wrap);
      charts.push(new uPlot({
        width: 280, height: 170, legend: { show: false }, cursor: { points: { show: false } },
        scales: { x: { time: false, range: [hist.lo, hist.lo + xs.length] }, y: { range: [0, top * 1.1] } },
        axes: [{ splits: () => Array.from({ length: xs.length + 1 }, (_, i) => hist.lo + i),
                 values: (u, ticks) => ticks.map((t) => "1e" + t), label: "|error|" }, { label: "count" }],
        series: [{}, { label: "count", fill: "#ef6c4a99", stroke: "#d4302b", paths: uPlot.paths.bars({ size: [0.9, 60], align: 0 }), points: { show: false } }],
      }, [xs, hist.counts], wrap));
    }
  }

  /** One chart per state variable (e.g. moving mean, moving variance): every adapter's value over the steps. */
  function stepCharts(box, caseId, highlight, inPanel) {
    const c = DATA.cases[caseId] || {};
    const results = DATA.results[caseId] || {};
    const steps = c.steps || [];
    let names = Object.keys(c.state || {});
    if (!names.length) {
      const first = Object.values(results).find((r) => r.outputs && Object.keys(r.outputs).length);
      names = first ? Object.keys(first.outputs).filter((k) => k.startsWith("step1.")).map((k) => k.slice(6))
        .filter((n) => (first.outputs["step1." + n].size || 0) <= 64) : [];
    }
    names = names.filter((n) => Object.values(results).some((r) => r.outputs && r.outputs["step1." + n]));
    if (!names.length) { box.innerHTML = `<p class="hint">No per-step state to plot.</p>`; return; }
    const channels = Math.max(1, ...names.map((n) => Math.min(8, ((c.state || {})[n] || {}).head ? c.state[n].head.length :
      ((Object.values(results).find((r) => r.outputs && r.outputs["step1." + n]) || {}).outputs["step1." + n].expected_head || [0]).length)));
    const pick = el("div", { class: "hint" }, `<label>channel <select class="ch">${Array.from({ length: channels }, (_, i) => `<option>${i}</option>`).join("")}</select></label> ` +
      `<label>show <select class="mode"><option value="value">values</option><option value="diff">actual − expected</option></select></label>`);
    box.appendChild(pick);
    const plots = el("div", { class: "plots" });
    box.appendChild(plots);
    let own = [];
    const xs = steps.map((_, i) => i + 1);
    xs.unshift(0);
    const tick = (v) => (v === 0 ? "init" : Number.isInteger(v) && steps[v - 1] ? `${v} ${modeText(steps[v - 1].mode).slice(0, 5)}` : "");
    function draw() {
      const ch = Number(pick.querySelector(".ch").value), diff = pick.querySelector(".mode").value === "diff";
      own.forEach((u) => { u.destroy(); if (inPanel) charts = charts.filter((x) => x !== u); }); own = [];
      plots.innerHTML = "";
      for (const name of names) {
        const init = num(((c.state || {})[name] || {}).head ? c.state[name].head[ch] : null);
        const series = [{}], data = [xs];
        const expected = [init ?? null];
        steps.forEach((_, i) => {
          const any = Object.values(results).map((r) => r.outputs && r.outputs[`step${i + 1}.${name}`]).find((o) => o && o.expected_head);
          expected.push(any ? num(any.expected_head[ch]) ?? null : null);
        });
        const minus = (ys) => ys.map((y, i) => (y === null || expected[i] === null ? null : y - expected[i]));
        series.push({ label: "expected", stroke: "#000", width: 2.5, dash: [6, 4] }); data.push(diff ? minus(expected) : expected);
        for (const a of ADAPTERS) {
          const r = results[a];
          if (!r || !r.outputs) continue;
          const ys = steps.map((_, i) => { const o = r.outputs[`step${i + 1}.${name}`]; return o && o.actual_head ? num(o.actual_head[ch]) ?? null : null; });
          if (ys.every((y) => y === null)) continue;
          series.push({ label: a, stroke: colorOf(a), width: a === highlight ? 3 : 1.3, points: { size: a === highlight ? 7 : 4 } });
          data.push(diff ? minus([init ?? null, ...ys]) : [init ?? null, ...ys]);
        }
        const wrap = el("div", { class: "plot" }, `<div class="title"><code>${esc(name)}</code>${diff ? " − expected" : ""}, channel ${ch}, every adapter</div>`);
        plots.appendChild(wrap);
        const u = new uPlot({
          width: 400, height: 230, scales: { x: { time: false } },
          axes: [{ values: (u, t) => t.map(tick), label: "step" }, { size: 60 }],
          series,
        }, data, wrap);
        own.push(u); if (inPanel) charts.push(u);
      }
    }
    pick.querySelectorAll("select").forEach((sel) => sel.addEventListener("change", draw));
    draw();
  }

  // ---------- the multi-step section ----------
  const multi = Object.keys(DATA.cases).filter((id) => (DATA.cases[id].steps || []).length > 1 && DATA.results[id]);
  if (multi.length) {
    const sec = document.getElementById("multistep-section");
    sec.hidden = false;
    const box = document.getElementById("multistep");
    for (const id of multi) {
      const steps = DATA.cases[id].steps;
      const d = el("details", { class: "ms-case" }, `<summary><code>${esc(id)}</code> · ${steps.length} steps: ${steps.map((s) => esc(modeText(s.mode))).join(" → ")}</summary>`);
      const inner = el("div");
      d.appendChild(inner);
      d.addEventListener("toggle", () => { if (d.open && !inner.childElementCount) stepCharts(inner, id, null, false); });
      box.appendChild(d);
    }
  }

  applyFilters();
  applySort();
  if (location.hash.length > 1) {
    const [cid, ad] = location.hash.slice(1).split("|").map(decodeURIComponent);
    if (cid && ad) openCell(cid, ad);
  }
  document.body.dataset.ready = "1";
}
})();
