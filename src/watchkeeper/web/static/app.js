// What every page shares: the API client, the user's settings, the theme, signing out, and the live alerts
// (a toast and a sound for every new incident; a modal that must be acknowledged for severity 4 and up).
"use strict";

const wk = (() => {
  const csrf = () => (document.cookie.match(/(?:^|; )wk_csrf=([^;]*)/) || [])[1] || "";

  async function api(method, path, body) {
    const headers = {"Accept": "application/json"};
    if (method !== "GET") headers["X-CSRF-Token"] = decodeURIComponent(csrf());
    if (body !== undefined && !(body instanceof FormData)) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body)});
    if (response.status === 401) { location.assign("/login?next=" + encodeURIComponent(location.pathname)); }
    const text = await response.text();
    const data = text && (response.headers.get("content-type") || "").includes("json") ? JSON.parse(text) : text;
    if (!response.ok) throw new Error((data && data.detail) || response.statusText);
    return data;
  }

  // The user's settings live on the server (GET/PATCH /api/v1/auth/me/preferences); one copy per page, fetched
  // once: callers that load side by side share the fetch, so a later copy never replaces one already changed.
  // A change sends only its own key: settings changed in another tab, or kept while this page's fetch failed,
  // stay stored.
  let settings = {};
  let loading = null;
  const prefs = {
    async load() {
      loading = loading || api("GET", "/api/v1/auth/me/preferences").then((saved) => { settings = saved; }, () => {});
      await loading;
      return settings;
    },
    get(key, fallback) { return key in settings ? settings[key] : fallback; },
    async set(key, value) { await prefs.load(); settings[key] = value; await api("PATCH", "/api/v1/auth/me/preferences", {[key]: value}); },
  };

  const listeners = [];
  const onEvent = (listener) => listeners.push(listener);
  const text = (value) => document.createTextNode(value == null ? "" : String(value));
  // Elements built from data: children that are strings become text nodes, never markup.
  const fill = (element, children) => {
    element.append(...children.map((c) => (typeof c === "string" ? text(c) : c)));
    return element;
  };
  function node(tag, className, ...children) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    return fill(element, children);
  }
  function svg(tag, attributes, ...children) {
    const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    return fill(element, children);
  }

  return {api, prefs, onEvent, listeners, text, node, svg};
})();

// -- theme ---------------------------------------------------------------------------------------------
(async () => {
  const toggle = document.getElementById("theme-toggle");
  const apply = (theme) => {
    document.documentElement.dataset.theme = theme;
    toggle.setAttribute("aria-pressed", String(theme === "dark"));
    try { localStorage.setItem("wk-theme", theme); } catch (e) { /* storage blocked */ }
  };
  toggle.addEventListener("click", async () => {
    const theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    apply(theme);
    await wk.prefs.set("theme", theme);
  });
  await wk.prefs.load();
  apply(wk.prefs.get("theme", document.documentElement.dataset.theme));
})();

// -- signing out ---------------------------------------------------------------------------------------
document.getElementById("sign-out").addEventListener("click", async () => {
  await wk.api("POST", "/api/v1/auth/logout").catch(() => null);
  location.assign("/login");
});

// -- live alerts ---------------------------------------------------------------------------------------
(() => {
  const toasts = document.getElementById("toasts");
  const modal = document.getElementById("emergency");
  let audio = null;

  function chime(urgent) {  // synthesised: no sound file to fetch
    try {
      audio = audio || new AudioContext();
      const tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = urgent ? 880 : 660;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + (urgent ? 1.2 : 0.5));
      tone.connect(gain).connect(audio.destination);
      tone.start(); tone.stop(audio.currentTime + (urgent ? 1.2 : 0.5));
    } catch (e) { /* no audio device, or autoplay blocked until the user interacts */ }
  }

  function toast(event) {
    const item = document.createElement("div");
    item.className = "toast";
    item.style.borderLeftColor = `var(--sev${event.severity})`;
    const link = document.createElement("a");
    link.href = `/incidents/${event.incident}`;
    link.append(wk.text(`${event.category_name || event.category}`));
    item.append(link, wk.text(` · severity ${event.severity} ${event.severity_label || ""} · ${event.camera}`));
    toasts.prepend(item);
    setTimeout(() => item.remove(), 15000);
  }

  // Emergencies wait their turn: the modal shows the oldest unacknowledged one, and how many follow it.
  const emergencies = [];
  function emergency(event) {
    emergencies.push(event);
    if (!modal.open) showEmergency();
  }
  function showEmergency() {
    const event = emergencies[0];
    if (!event) { modal.close(); return; }
    const more = emergencies.length > 1 ? ` (1 of ${emergencies.length})` : "";
    document.getElementById("emergency-title").textContent =
      `${event.severity_label || "Emergency"}: ${event.category_name || event.category}${more}`;
    document.getElementById("emergency-text").textContent = event.summary || "";
    document.getElementById("emergency-where").textContent =
      `${event.camera}${event.location ? " · " + event.location : ""} · ${new Date(event.at).toLocaleTimeString()}`;
    document.getElementById("emergency-open").href = `/incidents/${event.incident}`;
    const ack = document.getElementById("emergency-ack");
    const dismiss = document.getElementById("emergency-dismiss");
    const error = document.getElementById("emergency-error");
    const next = () => { emergencies.shift(); showEmergency(); };
    // Viewers cannot acknowledge, and an incident the database did not take has nothing to acknowledge:
    // they may dismiss it instead; so may anyone once acknowledging has failed.
    const mayAcknowledge = window.WATCHKEEPER.user.role !== "viewer" && Boolean(event.incident);
    ack.hidden = !mayAcknowledge;
    dismiss.hidden = mayAcknowledge;
    error.hidden = true;
    dismiss.onclick = next;
    ack.onclick = async () => {
      try {
        // Someone else may have handled it meanwhile: a stale pop-up must not undo a resolution.
        const current = await wk.api("GET", `/api/v1/incidents/${event.incident}`);
        if (current.status === "open") {
          await wk.api("PATCH", `/api/v1/incidents/${event.incident}`,
                       {status: "acknowledged", note: "acknowledged from the dashboard"});
        }
        next();
      } catch (failure) {
        error.textContent = `It could not be acknowledged: ${failure.message}`;
        error.hidden = false;
        dismiss.hidden = false;
      }
    };
    if (!modal.open) modal.showModal();
  }
  // An emergency stays until someone acknowledges it: Escape does not dismiss it.
  modal.addEventListener("cancel", (e) => e.preventDefault());

  let delay = 1000;
  function connect() {
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
    socket.onopen = () => { delay = 1000; };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      wk.listeners.forEach((listener) => listener(event));
      if (event.type === "incident" && event.event === "opened") {
        toast(event);
        chime(event.severity >= 4);
        if (event.severity >= 4) emergency(event);
      }
    };
    socket.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 30000); };
  }
  connect();
})();
