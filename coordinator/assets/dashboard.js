// The dashboard: polls /api/status and /api/history every two seconds and draws the job,
// its members, its curves (plain canvas line charts) and its checkpoint registry. A 401
// (the token cookie expired or the job's tokens changed) goes back to the sign-in page.
"use strict";

const PHASES = [
  ["data_wait_s", "data wait", "#8e6c8a"],
  ["forward_s", "forward", "#3b6ea5"],
  ["backward_s", "backward", "#d1803a"],
  ["grad_reduce_s", "grad reduce", "#4f9d69"],
  ["optimizer_s", "optimizer", "#b3261e"],
  ["collective_s", "in collectives", "#777777"],
];

const fmt = (x, digits = 3) => (Number.isFinite(x) ? Number(x).toPrecision(digits) : "-");
const ms = (s) => (s > 0 ? `${(s * 1e3).toFixed(1)} ms` : "-");
const text = (el, value) => { el.textContent = value; return el; };

function cell(row, value, cls) {
  const td = row.insertCell();
  text(td, value);
  if (cls) td.className = cls;
  return td;
}

async function getJson(url) {
  const answer = await fetch(url, { credentials: "same-origin" });
  if (answer.status === 401) {
    window.location.href = "/";
    throw new Error("signed out");
  }
  if (!answer.ok) throw new Error(`${url}: HTTP ${answer.status}`);
  return answer.json();
}

// A line chart of `series` ([{name, color, points: [[x, y], ...]}]) on `canvas`; the
// number of points drawn goes into data-points (what the browser test reads).
function lineChart(canvas, series, opts = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 62, R = 12, T = 10, B = 28;
  ctx.clearRect(0, 0, W, H);
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
  canvas.dataset.points = String(Math.max(0, ...series.map((s) => s.points.length)));
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5a6372";
  if (all.length === 0) {
    ctx.fillText("no steps reported yet", L, H / 2);
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (opts.zero) y0 = Math.min(0, y0);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += Math.abs(y1) * 0.1 || 1; y0 -= Math.abs(y0) * 0.1 || 0; }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = "#e3e6ea";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    ctx.beginPath(); ctx.moveTo(L, Y(y)); ctx.lineTo(W - R, Y(y)); ctx.stroke();
    ctx.fillText(fmt(y, 3), 4, Y(y) + 4);
  }
  ctx.fillText(`step ${x0}`, L, H - 8);
  const last = `step ${x1}`;
  ctx.fillText(last, W - R - ctx.measureText(last).width, H - 8);
  let legend = L + 8;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    s.points.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    if (series.length > 1) {
      ctx.fillStyle = s.color;
      ctx.fillText(s.name, legend, T + 10);
      legend += ctx.measureText(s.name).width + 12;
    }
  }
}

function drawMembers(status) {
  const body = document.querySelector("#members tbody");
  body.replaceChildren();
  const slow = new Set(status.stragglers);
  for (const m of status.members) {
    const ranks = m.progress.length ? [...m.progress].sort((a, b) => a.global_rank - b.global_rank) : [null];
    for (const p of ranks) {
      const row = body.insertRow();
      row.dataset.node = m.name;
      cell(row, m.name);
      cell(row, m.alive ? (m.finished ? "finished" : "alive") : "DEAD", m.alive ? "" : "dead");
      cell(row, `${(m.heartbeat_age_ms / 1e3).toFixed(1)} s ago`);
      if (!p) { cell(row, m.ranks.join(", ") || "-"); continue; }
      const rankCell = cell(row, String(p.global_rank));
      if (slow.has(p.global_rank)) {
        row.classList.add("straggler");
        rankCell.appendChild(text(document.createElement("span"), "straggler")).className = "badge";
      }
      const t = p.timing || {};
      cell(row, String(p.step));
      cell(row, fmt(p.loss, 4));
      cell(row, fmt(p.samples_per_sec, 4));
      cell(row, ms(t.step_s));
      cell(row, ms(Math.max(0, (t.step_s || 0) - (t.collective_s || 0))));
      cell(row, ms(t.data_wait_s));
      cell(row, p.data ? `${Math.round(p.data.prefetch_fill * 100)}%` : "-");
      cell(row, p.mfu > 0 ? `${(p.mfu * 100).toFixed(1)}%` : "-");
      cell(row, p.memory_peak_bytes > 0 ? `${(p.memory_peak_bytes / 2 ** 30).toFixed(2)} GiB` : "-");
    }
  }
  const note = document.getElementById("stragglers");
  note.textContent = status.stragglers.length
    ? `straggling: rank ${status.stragglers.join(", ")} (own time per step over the straggler factor times the other ranks' median; round median ${ms(status.median_own_step_s)})`
    : "";
}

// Checkpoints shown: the newest, and the newest of those with evaluations (the registry
// keeps every one).
const CHECKPOINT_ROWS = 20;

function drawCheckpoints(status) {
  const body = document.querySelector("#checkpoints tbody");
  body.replaceChildren();
  const evaluated = status.checkpoints.filter((c) => c.evals.length).slice(0, CHECKPOINT_ROWS);
  const shown = new Set([...status.checkpoints.slice(0, CHECKPOINT_ROWS), ...evaluated]);
  const rows = status.checkpoints.filter((c) => shown.has(c));
  const older = status.checkpoints.length - rows.length;
  text(document.getElementById("older"), older > 0 ? `and ${older} more (coordinator checkpoints lists them all)` : "");
  for (const c of rows) {
    const row = body.insertRow();
    row.dataset.step = String(c.step);
    cell(row, String(c.step));
    cell(row, String(c.epoch));
    cell(row, String(c.samples_consumed));
    cell(row, String(c.round));
    cell(row, new Date(c.registered_unix_ms).toLocaleString());
    const evals = row.insertCell();
    if (!c.evals.length) text(evals, "-");
    for (const e of c.evals) {
      const span = document.createElement("span");
      span.className = "metric";
      const numbers = e.metrics.slice(0, 4).map((m) => `${m.name} ${fmt(m.value, 3)}`).join(", ");
      text(span, `${e.suite}: ${e.phase}${numbers ? ` (${numbers})` : ""}`);
      evals.appendChild(span);
      if (e.images.length) {
        const strip = document.createElement("div");
        strip.className = "heatmaps";
        e.images.forEach((name, i) => {
          const img = document.createElement("img");
          img.className = "eval-heatmap";
          img.src = `/api/eval-image/${e.id}/${i}`;
          img.alt = img.title = `${e.suite}: ${name}`;
          strip.appendChild(img);
        });
        evals.appendChild(strip);
      }
    }
  }
}

function drawHistory(history) {
  const pts = history.points;
  const line = (key, color) => pts.map((p) => [p.step, key(p)]).filter((p) => Number.isFinite(p[1]));
  lineChart(document.getElementById("chart-loss"), [{ name: "loss", color: "#3b6ea5", points: line((p) => p.loss) }]);
  lineChart(document.getElementById("chart-lr"), [{ name: "lr", color: "#4f9d69", points: line((p) => p.lr) }], { zero: true });
  lineChart(document.getElementById("chart-throughput"), [{ name: "samples/s", color: "#d1803a", points: line((p) => p.samples_per_sec) }], { zero: true });
  lineChart(
    document.getElementById("chart-phases"),
    PHASES.map(([key, name, color]) => ({ name, color, points: line((p) => p.timing[key]) })),
    { zero: true },
  );
}

async function refresh() {
  try {
    const [status, history] = await Promise.all([getJson("/api/status"), getJson("/api/history")]);
    text(document.getElementById("job-id"), `#${status.job.id}`);
    text(
      document.getElementById("summary"),
      `${status.job.phase}, round ${status.job.round}, world size ${status.job.world_size}, ` +
        `${fmt(status.job.samples_per_sec, 4)} samples/s`,
    );
    drawMembers(status);
    drawHistory(history);
    drawCheckpoints(status);
    text(document.getElementById("updated"), `updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    text(document.getElementById("updated"), `not updated: ${e.message}`);
  }
}

refresh();
setInterval(refresh, 2000);
