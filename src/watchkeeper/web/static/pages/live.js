"use strict";
// The camera grid: each camera's live view with its health, started and stopped from here; the layout
// (columns) is kept in the user's settings.
(async () => {
  const grid = document.getElementById("camera-grid");
  const template = document.getElementById("camera-tile");
  const columns = document.getElementById("grid-size");
  const tiles = new Map();
  const problem = document.getElementById("live-problem");

  function show(camera) {
    let tile = tiles.get(camera.name);
    if (!tile) {
      tile = template.content.firstElementChild.cloneNode(true);
      const page = `/cameras/${encodeURIComponent(camera.name)}`;
      tile.querySelector("a.view").href = page;
      tile.querySelector("a.name").href = page;
      tile.querySelector("a.name").textContent = camera.name;
      tile.querySelector("img").alt = `Live view of ${camera.name}`;
      const toggle = tile.querySelector(".toggle");
      if (toggle) toggle.addEventListener("click", async () => {
        const running = toggle.dataset.running === "true";
        try {
          show(await wk.api("POST", `/api/v1/cameras/${encodeURIComponent(camera.name)}/${running ? "stop" : "start"}`));
        } catch (failure) {
          problem.textContent = `${camera.name} could not be ${running ? "stopped" : "started"}: ${failure.message}`;
          problem.hidden = false;
        }
      });
      tiles.set(camera.name, tile);
      grid.append(tile);
    }
    const state = camera.running ? (camera.health && camera.health.state) || "starting" : "off";
    const health = tile.querySelector(".health");
    health.className = `health ${state}`;
    health.textContent = state;
    tile.querySelector(".where").textContent = camera.location || "";
    const img = tile.querySelector("img");
    const stream = `/cameras/${encodeURIComponent(camera.name)}/stream.mjpeg`;
    if (camera.running && img.dataset.src !== stream) { img.src = stream; img.dataset.src = stream; }
    if (!camera.running) { img.removeAttribute("src"); img.dataset.src = ""; }
    const toggle = tile.querySelector(".toggle");
    if (toggle) {
      toggle.dataset.running = String(camera.running);
      toggle.textContent = camera.running ? "Stop" : "Start";
      toggle.setAttribute("aria-label", `${camera.running ? "Stop" : "Start"} monitoring ${camera.name}`);
    }
  }

  async function refresh() {
    let cameras;
    try {
      cameras = await wk.api("GET", "/api/v1/cameras");
    } catch (failure) {  // the server restarting: the next refresh tries again
      problem.textContent = `The cameras could not be loaded: ${failure.message}`;
      problem.hidden = false;
      return;
    }
    problem.hidden = true;
    document.getElementById("no-cameras").hidden = cameras.length > 0;
    cameras.forEach(show);
    const listed = new Set(cameras.map((camera) => camera.name));
    for (const [name, tile] of tiles) {  // removed meanwhile
      if (!listed.has(name)) { tile.remove(); tiles.delete(name); }
    }
  }

  await wk.prefs.load();
  columns.value = String(wk.prefs.get("live_columns", 2));
  grid.style.setProperty("--columns", columns.value);
  columns.addEventListener("change", () => {
    grid.style.setProperty("--columns", columns.value);
    wk.prefs.set("live_columns", Number(columns.value));
  });
  wk.onEvent((event) => { if (event.type === "camera") refresh(); });
  setInterval(refresh, 5000);  // health (fps, frame age) changes without events
  await refresh();
})();
