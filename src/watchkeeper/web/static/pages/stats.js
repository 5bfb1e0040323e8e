"use strict";
// Statistics: incidents over the chosen range (kept in the user's settings) per day, category, severity,
// camera and status, drawn as SVG with a hidden table each for screen readers; and the server's health.
(async () => {
  const $ = (id) => document.getElementById(id);
  const HOURS = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30};
  const CATEGORY_NAMES = JSON.parse($("category-names").textContent);
  const range = $("range");
  let stats = null, since = null;

  const {node, svg} = wk;
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");
  function niceStep(max, ticks) {
    const raw = Math.max(1, max) / ticks, power = 10 ** Math.floor(Math.log10(raw));
    return Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw));
  }

  // A chart's text alternative: the same numbers as a table only screen readers see.
  function table(caption, heads, rows) {
    return node("table", "sr-only", node("caption", "", caption),
      node("thead", "", node("tr", "", ...heads.map((h) => node("th", "", h)))),
      node("tbody", "", ...rows.map((row) => node("tr", "", ...row.map((v) => node("td", "", String(v)))))));
  }

  function empty(box) {
    box.dataset.total = "0";
    box.replaceChildren(node("p", "muted", "No incidents in this range."));
  }

  // Horizontal bars, one per row: [label, count, colour or undefined for the accent colour].
  function bars(box, caption, rows) {
    const total = rows.reduce((sum, [, n]) => sum + n, 0);
    if (!total) { empty(box); return; }
    // Drawn at the box's width so that the text keeps its size on a phone.
    const width = Math.max(box.clientWidth, 260), row = 26, left = Math.min(170, width * 0.42);
    const max = Math.max(...rows.map(([, n]) => n));
    const chart = svg("svg", {width, height: rows.length * row, viewBox: `0 0 ${width} ${rows.length * row}`,
                              "aria-hidden": "true"});
    rows.forEach(([label, n, colour], i) => {
      const y = i * row, length = (width - left - 44) * n / max;
      chart.append(
        svg("text", {x: left - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "label"}, label),
        svg("rect", {x: left, y: y + 4, width: Math.max(2, length), height: row - 8, rx: 3, class: "bar",
                     ...(colour ? {style: `fill: ${colour}`} : {})}),
        svg("text", {x: left + length + 6, y: y + row / 2 + 4, class: "value"}, String(n)));
    });
    box.dataset.total = String(total);
    box.replaceChildren(chart, table(caption, ["", "Incidents"], rows.map(([label, n]) => [label, n])));
  }

  // One column per UTC day of the range, days without incidents included.
  function days(box) {
    const counts = stats.incidents_by_day, list = [];
    const day = new Date(since.toISOString().slice(0, 10));  // the range's first UTC midnight
    for (; day <= new Date(); day.setUTCDate(day.getUTCDate() + 1)) list.push(day.toISOString().slice(0, 10));
    const total = list.reduce((sum, d) => sum + (counts[d] || 0), 0);
    if (!total) { empty(box); return; }
    const width = Math.max(box.clientWidth, 260), height = 180, left = 34, bottom = 22, top = 8;
    const max = Math.max(...list.map((d) => counts[d] || 0)), step = niceStep(max, 4);
    const ceiling = step * Math.ceil(max / step);
    const slot = (width - left) / list.length, y = (n) => top + (height - top - bottom) * (1 - n / ceiling);
    const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true"});
    for (let n = 0; n <= ceiling; n += step) {
      chart.append(svg("line", {x1: left, x2: width, y1: y(n), y2: y(n), class: "gridline"}),
                   svg("text", {x: left - 6, y: y(n) + 4, "text-anchor": "end", class: "tick"}, String(n)));
    }
    const every = Math.ceil(list.length / Math.max(1, Math.floor((width - left) / 48)));  // labels that fit
    list.forEach((d, i) => {
      const n = counts[d] || 0, x = left + i * slot;
      if (n) {
        chart.append(svg("rect", {x: x + slot * 0.15, y: y(n), width: Math.max(1, slot * 0.7), height: y(0) - y(n),
                                  class: "bar"}, svg("title", {}, `${d}: ${n}`)));
      }
      if (i % every === 0) {
        chart.append(svg("text", {x: x + slot / 2, y: height - 6, "text-anchor": "middle", class: "tick"}, d.slice(5)));
      }
    });
    box.dataset.total = String(total);
    box.replaceChildren(chart, table("Incidents per day", ["Day (UTC)", "Incidents"],
                                     list.map((d) => [d, counts[d] || 0])));
  }

  const sorted = (counts) => Object.entries(counts).sort((a, b) => b[1] - a[1]);
  function draw() {
    if (!stats) return;
    $("total-analyses").textContent = stats.analyses;
    $("total-crimes").textContent = stats.crimes_detected;
    $("total-incidents").textContent = stats.incidents;
    days($("chart-days"));
    bars($("chart-category"), "Incidents by category",
         sorted(stats.incidents_by_category).map(([id, n]) => [CATEGORY_NAMES[id] || id, n]));
    bars($("chart-severity"), "Incidents by severity", [5, 4, 3, 2, 1]
      .filter((s) => stats.incidents_by_severity[s])
      .map((s) => [`Severity ${s}`, stats.incidents_by_severity[s], `var(--sev${s})`]));
    bars($("chart-camera"), "Incidents by camera",
         sorted(stats.incidents_by_camera).map(([camera, n]) => [camera || "Uploaded files", n]));
    bars($("chart-status"), "Incidents by status",
         sorted(stats.incidents_by_status).map(([status, n]) => [status.replace(/_/g, " "), n]));
  }

  async function refresh() {
    since = new Date(Date.now() - HOURS[range.value] * 3600e3);
    try {
      stats = await wk.api("GET", `/api/v1/stats?since=${encodeURIComponent(since.toISOString())}`);
      $("stats-error").hidden = true;
      draw();
    } catch (error) {
      $("stats-error").textContent = `The statistics could not be loaded: ${error.message}`;
      $("stats-error").hidden = false;
    }
  }

  // -- health --------------------------------------------------------------------------------------------
  // Each cell names its column too: on a phone the rows are stacked and the table's head is hidden.
  function rows(tableId, list) {
    const heads = [...$(tableId).tHead.rows[0].cells].map((th) => th.textContent);
    $(tableId).tBodies[0].replaceChildren(...list.map((cells) => node("tr", "", ...cells.map((cell, i) => {
      const td = node("td", "", cell);
      td.dataset.label = heads[i];
      return td;
    }))));
  }
  function state(word, kind) { return node("span", `state ${kind}`, word); }

  async function health() {
    // /health answers 503 with the same body when the database is down: read it either way.
    const response = await fetch("/health", {credentials: "same-origin", headers: {Accept: "application/json"}});
    const body = await response.json();
    $("health-status").replaceChildren(state(body.status, body.status === "healthy" ? "ok" : "bad"));
    $("health-version").textContent = body.version || "–";
    $("health-database").textContent = body.database || "–";
    const jobs = Object.entries(body.jobs || {});
    $("health-jobs").replaceChildren(...(jobs.length
      ? jobs.flatMap(([name, n]) => [node("dt", "", name), node("dd", "", String(n))])
      : [node("dt", "", "Jobs"), node("dd", "", "none yet")]));  // a term always has its description
    const channels = Object.entries(body.alert_channels || {});
    $("no-channels").hidden = channels.length > 0;
    $("channels").hidden = channels.length === 0;
    rows("channels", channels.map(([name, c]) => [name,
      c.failing ? state("failing", "bad") : c.waiting ? state("waiting", "warn") : state("ok", "ok"),
      when(c.last_delivered_at), c.last_error || "–"]));
  }

  async function providers() {
    const body = await wk.api("GET", "/api/v1/providers");
    rows("providers", body.providers.map((p) => [
      p.name + (p.name === body.default_provider ? " (default)" : ""), p.type,
      [p.fast_model, p.detailed_model].filter(Boolean).filter((m, i, all) => all.indexOf(m) === i).join(", ") || "–"]));
    $("provider-order").textContent = `Tried in turn: ${body.order.join(", ")}. Verifier: ${body.verifier || "none"}.`;
  }

  async function models() {
    const body = await wk.api("GET", "/api/v1/models");
    rows("models", body.models.map((m) => [m.name, m.description,
      m.installed ? state("yes", "ok") : state(m.optional ? "no (optional)" : "no", m.optional ? "off" : "bad")]));
  }

  await wk.prefs.load();
  range.value = HOURS[wk.prefs.get("stats_range")] ? wk.prefs.get("stats_range") : "7d";
  range.addEventListener("change", () => { wk.prefs.set("stats_range", range.value); refresh(); });
  // New incidents change the counts: redraw, at most every few seconds when they come in bursts.
  let pending = 0;
  wk.onEvent((event) => {
    if (event.type === "incident" && !pending) pending = setTimeout(() => { pending = 0; refresh(); }, 3000);
  });
  let resizing = 0;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(draw, 150); });
  await Promise.all([refresh(), health(), providers(), models()].map((p) => p.catch((error) => {
    $("stats-error").textContent = error.message;
    $("stats-error").hidden = false;
  })));
  document.body.dataset.statsReady = "true";
})();
