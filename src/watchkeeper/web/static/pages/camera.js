"use strict";
// One camera: its live picture, its health (refreshed), start and stop for operators, the live events of this
// camera beside it, and the raw tier-1 JSON of its latest analysis from seed 001's /stream_video socket.
(() => {
  const name = document.getElementById("camera-page").dataset.camera;
  const path = encodeURIComponent(name);
  const img = document.getElementById("stream");
  const toggle = document.getElementById("toggle");  // absent for viewers
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  // -- health ----------------------------------------------------------------------------------------
  const READINGS = [
    ["Frames", (h) => h.frames],
    ["Frames per second", (h) => (h.fps == null ? "—" : h.fps.toFixed(1))],
    ["Picture", (h) => (h.width ? `${h.width} × ${h.height}` : "—")],
    ["Last frame", (h) => (h.last_frame_age_s == null ? "—" : `${h.last_frame_age_s.toFixed(1)} s ago`)],
    ["Connected since", (h) => (h.connected_since ? new Date(h.connected_since * 1000).toLocaleString() : "—")],
    ["Reconnects", (h) => h.reconnects],
    ["Sound", (h) => (h.has_audio ? "yes" : "no")],
    ["Recording", (h) => h.recording || "off"],
    ["Last error", (h) => h.last_error || "none"],
  ];
  const STATISTICS = [
    ["Incidents this session", (s) => s.total_incidents],
    ["Windows analysed", (s) => s.windows_analysed],
    ["Analysis time (median)", (s) => (s.analysis_ms_p50 == null ? "—" : `${s.analysis_ms_p50} ms`)],
  ];

  function reading(label, value) {
    const div = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.append(wk.text(label));
    dd.append(wk.text(value));
    div.append(dt, dd);
    return div;
  }

  function show(camera) {
    const state = camera.running ? (camera.health && camera.health.state) || "starting" : "off";
    const badge = document.getElementById("health");
    badge.className = `health ${state}`;
    badge.textContent = state;
    const stream = `/cameras/${path}/stream.mjpeg`;
    if (camera.running && img.dataset.src !== stream) { img.src = stream; img.dataset.src = stream; }
    if (!camera.running) { img.removeAttribute("src"); img.dataset.src = ""; }
    document.getElementById("stream-off").hidden = camera.running;
    const facts = [];
    if (camera.health) facts.push(...READINGS.map(([label, value]) => reading(label, value(camera.health))));
    if (camera.statistics) facts.push(...STATISTICS.map(([label, value]) => reading(label, value(camera.statistics))));
    document.getElementById("health-facts").replaceChildren(...facts);
    if (toggle) {
      toggle.hidden = false;
      toggle.dataset.running = String(camera.running);
      toggle.textContent = camera.running ? "Stop" : "Start";
      toggle.setAttribute("aria-label", `${camera.running ? "Stop" : "Start"} monitoring ${name}`);
    }
  }

  async function refresh() {
    try {
      show(await wk.api("GET", `/api/v1/cameras/${path}`));
    } catch (e) {
      document.getElementById("health").textContent = e.message;  // removed meanwhile, or the server is away
    }
  }

  const problem = document.getElementById("camera-problem");
  if (toggle) toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    try {
      show(await wk.api("POST", `/api/v1/cameras/${path}/${toggle.dataset.running === "true" ? "stop" : "start"}`));
      problem.hidden = true;
    } catch (failure) {  // said, not swallowed: a Stop that did nothing must not look done
      problem.textContent = `It could not be done: ${failure.message}`;
      problem.hidden = false;
    } finally {
      toggle.disabled = false;
    }
  });

  // -- the event feed: one entry per incident, the latest change first -------------------------------
  const feed = document.getElementById("feed");
  const template = document.getElementById("feed-item");
  const entries = new Map();
  const FEED_LENGTH = 50;
  const STATES = {opened: "open", updated: "updated", closed: "closed"};

  function entry(incident) {
    const key = incident.id != null ? `row-${incident.id}` : `live-${incident.live_id}`;
    let item = entries.get(key);
    if (!item) {
      item = template.content.firstElementChild.cloneNode(true);
      entries.set(key, item);
    }
    const severity = item.querySelector(".sev");
    severity.className = `sev sev-${incident.severity}`;
    severity.textContent = String(incident.severity);
    severity.title = incident.severity_label || `severity ${incident.severity}`;
    const what = item.querySelector(".what");
    what.textContent = incident.category_name || incident.category;
    if (incident.id != null) what.href = `/incidents/${incident.id}`; else what.removeAttribute("href");
    item.querySelector(".state").textContent = incident.state;
    item.classList.toggle("closed", incident.state === "closed");
    item.style.borderLeftColor = incident.state === "closed" ? "" : `var(--sev${incident.severity})`;
    item.querySelector(".summary").textContent = incident.summary || "";
    item.querySelector(".when").textContent = when(incident.at);
    feed.prepend(item);  // moves it to the top when it was already listed
    while (feed.children.length > FEED_LENGTH) {
      const last = feed.lastElementChild;
      entries.forEach((value, k) => { if (value === last) entries.delete(k); });
      last.remove();
    }
    document.getElementById("feed-empty").hidden = true;
  }

  wk.onEvent((event) => {
    if (event.type === "incident" && event.camera === name) {
      entry({id: event.incident, live_id: event.incident_id, severity: event.severity,
             severity_label: event.severity_label, category: event.category, category_name: event.category_name,
             summary: event.summary, state: STATES[event.event] || event.event, at: event.at});
    }
    if (event.type === "camera" && event.camera === name) refresh();
  });

  async function recent() {  // what happened before the page opened, oldest first so the newest ends on top
    const page = await wk.api("GET", `/api/v1/incidents?camera=${path}&limit=10`).catch(() => ({items: []}));
    page.items.reverse().filter((i) => !entries.has(`row-${i.id}`)).forEach((i) => entry({
      id: i.id, severity: i.severity, category: i.category, category_name: i.category_name, summary: i.summary,
      state: i.status, at: i.updated_at}));
  }

  // -- the latest analysis, raw ----------------------------------------------------------------------
  const analysis = document.getElementById("analysis");
  let delay = 1000;
  function listen() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/stream_video?camera=${path}`);
    socket.onmessage = (message) => {
      delay = 1000;
      const {frame, ...tier1} = JSON.parse(message.data);  // the picture is already on the page, as MJPEG
      if ("status" in tier1) analysis.textContent = JSON.stringify(tier1, null, 2);
    };
    // A stopped camera refuses the socket: try again, less and less often.
    socket.onclose = () => { setTimeout(listen, delay); delay = Math.min(delay * 2, 30000); };
  }

  refresh().then(recent);
  setInterval(refresh, 3000);  // fps and frame age change without events
  listen();
})();
