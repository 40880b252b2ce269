// Runnel's web view: polls /api/state once a second and redraws. No
// dependencies, nothing fetched from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const NODE_W = 200, NODE_H = 66, GAP_X = 40, GAP_Y = 54, PAD = 20;

let layoutKey = "";   // the graph drawn, to redraw only when it changes
let lastOK = 0;

function fmt(n) {
  if (n === undefined || n === null) return "–";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function dur(s) {
  if (s === undefined || s === null) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// layout places steps in layers: each step one layer below its deepest
// input, in the order steps were added within a layer.
function layout(graph) {
  const layer = {}, pos = {}, rows = [];
  for (const s of graph.steps) {
    let l = 0;
    for (const i of s.inputs) l = Math.max(l, (layer[i] ?? -1) + 1);
    layer[s.id] = l;
    (rows[l] = rows[l] || []).push(s.id);
  }
  const widest = Math.max(1, ...rows.map(r => r.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  rows.forEach((row, l) => {
    const rowW = row.length * NODE_W + (row.length - 1) * GAP_X;
    row.forEach((id, i) => {
      pos[id] = { x: (width - rowW) / 2 + i * (NODE_W + GAP_X), y: PAD + l * (NODE_H + GAP_Y) };
    });
  });
  return { pos, width, height: PAD * 2 + rows.length * NODE_H + (rows.length - 1) * GAP_Y };
}

function drawGraph(graph) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const { pos, width, height } = layout(graph);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const defs = el("svg:defs");
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#98a2b3" }));
  defs.append(marker);
  svg.append(defs);
  graph.edges.forEach((e, i) => {
    const a = pos[e.from], b = pos[e.to];
    const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
    const g = el("svg:g", { class: "edge", "data-from": e.from, "data-to": e.to });
    const my = (y1 + y2) / 2;
    g.append(el("svg:path", { d: `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }));
    g.append(el("svg:text", { x: (x1 + x2) / 2 + 6, y: my + 4, class: "rate", id: "edge-" + i }, ""));
    svg.append(g);
  });
  for (const s of graph.steps) {
    const p = pos[s.id];
    const cls = "node" + (s.input || s.output ? " io" : s.stateful ? " stateful" : "");
    const g = el("svg:g", { class: cls, "data-step": s.id, transform: `translate(${p.x},${p.y})` });
    const rx = s.stateful && !s.input && !s.output ? 14 : 3;
    const rect = el("svg:rect", { width: NODE_W, height: NODE_H, rx });
    if (s.input || s.output) rect.setAttribute("transform", "skewX(-8) translate(5,0)");
    g.append(rect);
    g.append(el("svg:title", {}, `${s.id} (${s.kind})`));
    g.append(el("svg:text", { x: 10, y: 18, class: "name" }, s.name.length > 26 ? s.name.slice(0, 25) + "…" : s.name));
    g.append(el("svg:text", { x: NODE_W - 10, y: 18, class: "kind", "text-anchor": "end" }, s.kind));
    g.append(el("svg:text", { x: 10, y: 38, class: "count", "data-step": s.id, "data-items": "0" }, "0 items"));
    g.append(el("svg:text", { x: 10, y: 56, class: "sub", "data-step": s.id }, ""));
    svg.append(g);
  }
}

function spark(values) {
  const w = 140, h = 22;
  const svg = el("svg:svg", { class: "spark", width: w, height: h, viewBox: `0 0 ${w} ${h}` });
  if (values.length > 1) {
    const max = Math.max(1, ...values);
    const pts = values.map((v, i) => `${(i / (values.length - 1)) * w},${h - 1 - (v / max) * (h - 2)}`);
    svg.append(el("svg:polyline", { points: pts.join(" ") }));
  }
  return svg;
}

function render(st) {
  document.getElementById("flow").textContent = st.flow || "(not running)";
  const status = document.getElementById("status");
  status.textContent = st.running ? "running" : "starting";
  status.className = "status" + (st.running ? " running" : "");
  if (!st.running || !st.graph) return;

  const key = JSON.stringify(st.graph);
  if (key !== layoutKey) { drawGraph(st.graph); layoutKey = key; }
  const kinds = {}, inputs = new Set();
  for (const s of st.graph.steps) { kinds[s.id] = s.kind; if (s.input) inputs.add(s.id); }

  let inRate = 0;
  for (const s of st.steps) {
    if (inputs.has(s.id)) inRate += s.in_per_second;
    const count = document.querySelector(`text.count[data-step="${CSS.escape(s.id)}"]`);
    if (count) {
      count.setAttribute("data-items", String(s.items_in));
      count.textContent = `${fmt(s.items_in)} items · ${fmt(s.in_per_second)}/s`;
    }
    const sub = document.querySelector(`text.sub[data-step="${CSS.escape(s.id)}"]`);
    if (sub) {
      const parts = [];
      if (s.state_keys !== undefined) parts.push(`${fmt(s.state_keys)} keys`);
      if (s.late_items) parts.push(`${fmt(s.late_items)} late`);
      parts.push(`busy ${dur(s.busy_seconds)}`);
      sub.textContent = parts.join(" · ");
    }
  }
  st.edges.forEach((e, i) => {
    const t = document.getElementById("edge-" + i);
    if (t) t.textContent = `${fmt(e.per_second)}/s` + (e.queued > 0 ? ` · ${fmt(e.queued)} queued` : "");
    if (t) t.setAttribute("data-queued", String(e.queued));
  });

  const tbody = document.querySelector("#steps tbody");
  tbody.replaceChildren(...st.steps.map(s => {
    const tr = el("tr", { "data-step": s.id });
    const out = (s.items_out || []).map(fmt).join(" / ") || "–";
    const cells = [s.id, kinds[s.id], fmt(s.items_in), out, fmt(s.in_per_second)];
    for (const c of cells) tr.append(el("td", {}, c));
    const sp = el("td");
    sp.append(spark(st.history[s.id] || []));
    tr.append(sp);
    tr.append(el("td", {}, dur(s.busy_seconds)));
    tr.append(el("td", {}, s.state_keys === undefined ? "" : fmt(s.state_keys)));
    tr.append(el("td", {}, s.late_items === undefined ? "" : fmt(s.late_items)));
    return tr;
  }));

  const wbody = document.querySelector("#workers tbody");
  wbody.replaceChildren(...st.workers.map(w => {
    const tr = el("tr");
    for (const c of [String(w.index), String(w.epoch), fmt(w.epochs_closed), fmt(w.inflight_items)]) tr.append(el("td", {}, c));
    const td = el("td", {}, Math.round(w.load * 100) + "%");
    const bar = el("span", { class: "bar" });
    const fill = el("span");
    fill.style.width = Math.round(w.load * 100) + "%";
    bar.append(fill);
    td.append(bar);
    tr.append(td);
    return tr;
  }));

  document.getElementById("uptime").textContent = dur((st.now_ms - st.started_ms) / 1000);
  document.getElementById("rate").textContent = fmt(inRate);
  document.getElementById("epoch").textContent = st.workers.length ? String(Math.max(...st.workers.map(w => w.epoch))) : "–";
  const rec = document.querySelector("#recovery tbody");
  const age = document.getElementById("commit-age");
  if (st.recovery) {
    const r = st.recovery;
    document.getElementById("committed").textContent = String(r.committed_epoch);
    age.textContent = r.last_commit_ms ? dur(r.last_commit_age_seconds) + " ago" : "none yet";
    // A commit is due every epoch; three epochs without one is worth a look.
    age.className = "value" + (r.last_commit_ms && r.last_commit_age_seconds > 3 * st.epoch_interval_seconds ? " warn" : "");
    const rows = [["Committed epoch", r.committed_epoch], ["Last commit", r.last_commit_ms ? new Date(r.last_commit_ms).toISOString() : "none yet"],
      ["Epoch length", dur(st.epoch_interval_seconds)], ["Snapshot rows", fmt(r.snapshot_rows)], ["Snapshot bytes", fmt(r.snapshot_bytes)]];
    rec.replaceChildren(...rows.map(([k, v]) => { const tr = el("tr"); tr.append(el("td", {}, k), el("td", {}, String(v))); return tr; }));
  } else {
    document.getElementById("committed").textContent = "off";
    age.textContent = "–";
    rec.replaceChildren(el("tr", {}, ""));
    rec.firstChild.append(el("td", {}, "Recovery is off (no -r): nothing is snapshotted."));
  }

  const events = document.getElementById("events");
  if (st.events.length) {
    events.replaceChildren(...st.events.slice().reverse().map(e =>
      el("li", { class: e.level }, `${new Date(e.time).toISOString()} ${e.level} ${e.message}`)));
  }
}

async function poll() {
  try {
    const resp = await fetch("api/state", { cache: "no-store" });
    if (!resp.ok) throw new Error(resp.statusText);
    render(await resp.json());
    lastOK = Date.now();
  } catch (err) {
    const status = document.getElementById("status");
    status.textContent = lastOK ? "connection lost (the flow ended or stopped?)" : "cannot reach the flow";
    status.className = "status lost";
  }
  setTimeout(poll, POLL_MS);
}

poll();
