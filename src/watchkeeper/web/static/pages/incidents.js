"use strict";
// The incident history: filters kept in the URL (a view can be bookmarked) and, last used, in the user's
// settings; pages through GET /api/v1/incidents; new incidents from the live feed join the first page.
(async () => {
  const FILTERS = ["camera", "category", "min_severity", "status", "since", "until"];
  const LIMITS = [25, 50, 100];
  const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
  const form = document.getElementById("filters");
  const rows = document.getElementById("rows");
  const pageSize = document.getElementById("page-size");
  const error = document.getElementById("error");
  let filters = {}, offset = 0, limit = 50, shown = new Set();

  const field = (name) => form.elements.namedItem(name);

  // The URL holds the view: the filters, and the page when it is not the first.
  function fromQuery(params) {
    filters = {};
    FILTERS.forEach((name) => { if (params.get(name)) filters[name] = params.get(name); });
    offset = Math.max(0, Number(params.get("offset")) || 0);
    limit = LIMITS.includes(Number(params.get("limit"))) ? Number(params.get("limit")) : 50;
  }
  function toQuery() {
    const params = new URLSearchParams(filters);
    if (offset) params.set("offset", String(offset));
    if (limit !== 50) params.set("limit", String(limit));
    return params;
  }
  function remember(push) {
    const query = toQuery().toString();
    const url = query ? `${location.pathname}?${query}` : location.pathname;
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }
  function fillForm() {
    FILTERS.forEach((name) => { field(name).value = filters[name] || ""; });
    pageSize.value = String(limit);
  }

  function cell(label, ...content) {
    const td = document.createElement("td");
    td.dataset.label = label;  // the column's name, shown beside the value when the table stacks on a phone
    td.append(...content);
    return td;
  }
  function badge(className, value) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = value;
    return span;
  }

  function row(incident, fresh) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(incident.id);
    if (fresh) tr.classList.add("fresh");
    const link = document.createElement("a");
    link.href = `/incidents/${incident.id}`;
    link.textContent = new Date(incident.created_at).toLocaleString();
    link.setAttribute("aria-label", `Incident ${incident.id}, ${incident.category_name}, ${link.textContent}`);
    tr.append(
      cell("Time", link),
      cell("Camera", wk.text(incident.camera || "–")),
      cell("Category", wk.text(incident.category_name)),
      cell("Severity", badge(`sev sev-${incident.severity}`,
                             `${incident.severity} ${vocabulary.severities[incident.severity] || ""}`)),
      cell("Status", badge(`status status-${incident.status}`,
                           vocabulary.statuses[incident.status] || incident.status)),
      cell("Confidence", wk.text(`${Math.round(incident.confidence * 100)} %`)));
    // The whole row opens the incident for a mouse; the link in it is the keyboard's way.
    tr.addEventListener("click", (event) => { if (!event.target.closest("a")) location.assign(link.href); });
    return tr;
  }

  async function refresh({live = false} = {}) {
    const query = new URLSearchParams({limit: String(limit), offset: String(offset)});
    for (const [name, value] of Object.entries(filters)) {
      if (name !== "since" && name !== "until") { query.set(name, value); continue; }
      // The date fields are local times; the API takes them as UTC. A date that is none (an old bookmark,
      // a hand-edited address) is left out rather than blanking the list.
      const when = new Date(value);
      if (!Number.isNaN(when.getTime())) query.set(name, when.toISOString());
    }
    let page;
    try {
      page = await wk.api("GET", `/api/v1/incidents?${query}`);
    } catch (failure) {
      error.textContent = `The incidents could not be loaded: ${failure.message}`;
      error.hidden = false;
      return;
    }
    error.hidden = true;
    const before = shown;
    shown = new Set(page.items.map((incident) => incident.id));
    rows.replaceChildren(...page.items.map((incident) => row(incident, live && !before.has(incident.id))));
    document.getElementById("empty").hidden = page.items.length > 0;
    document.getElementById("count").textContent = `${page.total} incident${page.total === 1 ? "" : "s"}`;
    const pages = Math.max(1, Math.ceil(page.total / limit));
    document.getElementById("page-of").textContent = `Page ${Math.floor(offset / limit) + 1} of ${pages}`;
    document.getElementById("previous").disabled = offset === 0;
    document.getElementById("next").disabled = offset + limit >= page.total;
  }

  async function apply() {
    filters = {};
    FILTERS.forEach((name) => { if (field(name).value.trim()) filters[name] = field(name).value.trim(); });
    offset = 0;
    remember(true);
    await refresh();
    await wk.prefs.set("incident_filters", {...filters, limit});
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  document.getElementById("clear").addEventListener("click", () => { form.reset(); apply(); });
  pageSize.addEventListener("change", () => { limit = Number(pageSize.value); apply(); });
  document.getElementById("previous").addEventListener("click", () => {
    offset = Math.max(0, offset - limit); remember(true); refresh();
  });
  document.getElementById("next").addEventListener("click", () => { offset += limit; remember(true); refresh(); });
  window.addEventListener("popstate", () => { fromQuery(new URLSearchParams(location.search)); fillForm(); refresh(); });

  // New incidents matter on the first page only; a burst of them is one refresh.
  let pending = null;
  wk.onEvent((event) => {
    if (event.type !== "incident" || event.event !== "opened" || offset !== 0 || pending) return;
    pending = setTimeout(() => { pending = null; refresh({live: true}); }, 300);
  });

  await wk.prefs.load();
  const params = new URLSearchParams(location.search);
  if (FILTERS.some((name) => params.has(name)) || params.has("offset") || params.has("limit")) {
    fromQuery(params);
  } else {  // a plain /incidents opens with the filters used last
    const saved = wk.prefs.get("incident_filters", {});
    fromQuery(new URLSearchParams(Object.entries(saved).map(([k, v]) => [k, String(v)])));
    remember(false);
  }
  fillForm();
  wk.api("GET", "/api/v1/cameras").then((cameras) => {
    document.getElementById("camera-names").replaceChildren(...cameras.map((camera) => {
      const option = document.createElement("option");
      option.value = camera.name;
      return option;
    }));
  }).catch(() => null);  // only suggestions: typing a name still works
  await refresh();
})();
