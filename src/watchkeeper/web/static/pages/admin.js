"use strict";
// The admin page: users (approving registrations, roles, disabling), API keys and cameras, all through /api/v1.
(() => {
  const ROLES = ["viewer", "operator", "admin"];
  const me = window.WATCHKEEPER.user.name;
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  let users = [];

  function cell(row, label, value) {
    const td = row.insertCell();
    td.dataset.label = label;
    if (value instanceof Node) td.append(value); else td.append(wk.text(value));
    return td;
  }

  function button(label, className, accessibleName, action, errors) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `button small ${className}`;
    b.append(wk.text(label));
    b.setAttribute("aria-label", accessibleName);
    b.addEventListener("click", () => attempt(b, action, errors));
    return b;
  }

  // Runs a change, showing its failure in the section's error line; the control is off while it runs.
  async function attempt(control, action, errors) {
    errors.hidden = true;
    if (control) control.disabled = true;
    try {
      await action();
      return true;
    } catch (e) {
      errors.textContent = e.message;
      errors.hidden = false;
      return false;
    } finally {
      if (control) control.disabled = false;
    }
  }

  // -- users -----------------------------------------------------------------------------------------
  const userErrors = document.getElementById("users-error");

  function userRow(user) {
    const row = document.createElement("tr");
    row.dataset.name = user.name;
    if (user.state === "pending") row.classList.add("pending");
    const self = user.name === me;
    cell(row, "Name", self ? `${user.name} (you)` : user.name);
    const role = document.createElement("select");
    role.setAttribute("aria-label", `Role of ${user.name}`);
    role.disabled = self;  // an admin demoting themselves would lose this page mid-change
    ROLES.forEach((r) => role.add(new Option(r, r, false, r === user.role)));
    role.addEventListener("change", async () => {
      const patch = () => wk.api("PATCH", `/api/v1/users/${user.id}`, {role: role.value});
      const ok = await attempt(role, patch, userErrors);
      if (!ok) role.value = user.role;
      loadUsers();
    });
    cell(row, "Role", role);
    const state = document.createElement("span");
    state.className = `state ${user.state}`;
    state.append(wk.text(user.state));
    cell(row, "State", state);
    cell(row, "E-mail", user.email || "");
    cell(row, "Created", when(user.created_at));
    cell(row, "Last sign-in", when(user.last_login_at));
    const actions = row.insertCell();
    actions.className = "actions-cell";
    const change = (what) => async () => {
      await wk.api("POST", `/api/v1/users/${user.id}/${what}`);
      await loadUsers();
    };
    if (user.state !== "active") {
      const verb = user.state === "pending" ? "Approve" : "Enable";
      actions.append(button(verb, "", `${verb} ${user.name}`, change("approve"), userErrors));
    }
    if (user.state !== "disabled" && !self) {
      const verb = user.state === "pending" ? "Refuse" : "Disable";
      actions.append(button(verb, "danger", `${verb} ${user.name}`, change("disable"), userErrors));
    }
    return row;
  }

  async function loadUsers() {
    const page = await wk.api("GET", "/api/v1/users?limit=500");
    // Registrations waiting for approval come first.
    users = page.items.sort((a, b) => (a.state === "pending" ? 0 : 1) - (b.state === "pending" ? 0 : 1));
    document.querySelector("#users tbody").replaceChildren(...users.map(userRow));
    const pending = users.filter((u) => u.state === "pending").length;
    const note = document.getElementById("pending-note");
    note.hidden = !pending;
    note.textContent = pending ? `${pending} account${pending > 1 ? "s" : ""} waiting for approval (highlighted).` : "";
    const owner = document.getElementById("key-owner"), chosen = owner.value;
    const selected = (u) => (chosen ? String(u.id) === chosen : u.name === me);  // a choice survives reloads
    owner.replaceChildren(...users.filter((u) => u.state === "active")
      .map((u) => new Option(`${u.name} (${u.role})`, u.id, false, selected(u))));
  }

  document.getElementById("user-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = submit.currentTarget;
    const body = {name: form.name.value.trim(), password: form.password.value, role: form.role.value};
    if (form.email.value.trim()) body.email = form.email.value.trim();
    if (await attempt(null, () => wk.api("POST", "/api/v1/users", body), userErrors)) {
      form.reset();
      loadUsers().then(loadKeys);
    }
  });

  // -- API keys --------------------------------------------------------------------------------------
  const keyErrors = document.getElementById("keys-error");
  const panel = document.getElementById("new-key");

  function keyRow(key) {
    const row = document.createElement("tr");
    const prefix = document.createElement("code");
    prefix.append(wk.text(key.prefix));
    cell(row, "Prefix", prefix);
    cell(row, "Name", key.name);
    cell(row, "Role", key.role);
    const owner = users.find((u) => u.id === key.user_id);
    cell(row, "Owner", owner ? owner.name : `user ${key.user_id}`);
    cell(row, "Created", when(key.created_at));
    cell(row, "Last used", when(key.last_used_at));
    const actions = row.insertCell();
    actions.className = "actions-cell";
    actions.append(button("Revoke", "danger", `Revoke the key ${key.name} (${key.prefix})`, async () => {
      if (!confirm(`Revoke the key “${key.name}”? Whatever uses it stops working.`)) return;
      await wk.api("DELETE", `/api/v1/keys/${key.id}`);
      await loadKeys();
    }, keyErrors));
    return row;
  }

  async function loadKeys() {
    const page = await wk.api("GET", "/api/v1/keys?limit=500");
    document.querySelector("#keys tbody").replaceChildren(...page.items.map(keyRow));
  }

  document.getElementById("key-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = submit.currentTarget;
    const body = {name: form.name.value.trim(), user_id: Number(form.owner.value)};
    if (form.role.value) body.role = form.role.value;
    let created = null;
    if (await attempt(null, async () => { created = await wk.api("POST", "/api/v1/keys", body); }, keyErrors)) {
      form.name.value = "";
      document.getElementById("new-key-value").textContent = created.key;
      document.getElementById("new-key-copied").hidden = true;
      panel.hidden = false;
      panel.focus();
      loadKeys();
    }
  });

  document.getElementById("new-key-copy").addEventListener("click", async () => {
    const value = document.getElementById("new-key-value");
    try {
      await navigator.clipboard.writeText(value.textContent);
    } catch (e) {
      // The clipboard API needs a secure context: select the key instead, for Ctrl+C.
      getSelection().selectAllChildren(value);
      document.getElementById("new-key-copied").textContent = "Selected: press Ctrl+C to copy.";
    }
    document.getElementById("new-key-copied").hidden = false;
  });
  document.getElementById("new-key-dismiss").addEventListener("click", () => {
    document.getElementById("new-key-value").textContent = "";  // the key leaves the page with the panel
    panel.hidden = true;
    document.getElementById("key-name").focus();
  });

  // -- cameras ---------------------------------------------------------------------------------------
  const cameraErrors = document.getElementById("cameras-error");

  function cameraRow(camera) {
    const row = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/cameras/${encodeURIComponent(camera.name)}`;
    link.append(wk.text(camera.name));
    cell(row, "Name", link);
    cell(row, "Location", camera.location);
    cell(row, "Source", camera.source).classList.add("agent");
    const state = camera.running ? (camera.health && camera.health.state) || "starting" : "off";
    const badge = document.createElement("span");
    badge.className = `health ${state}`;
    badge.append(wk.text(state));
    cell(row, "State", badge);
    const actions = row.insertCell();
    actions.className = "actions-cell";
    actions.append(button("Delete", "danger", `Delete the camera ${camera.name}`, async () => {
      if (!confirm(`Delete the camera “${camera.name}”? Its incidents stay.`)) return;
      await wk.api("DELETE", `/api/v1/cameras/${encodeURIComponent(camera.name)}`);
      await loadCameras();
    }, cameraErrors));
    return row;
  }

  async function loadCameras() {
    const cameras = await wk.api("GET", "/api/v1/cameras");
    document.querySelector("#cameras tbody").replaceChildren(...cameras.map(cameraRow));
  }

  document.getElementById("camera-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = submit.currentTarget;
    const body = {name: form.name.value.trim(), source: form.source.value.trim(), location: form.location.value.trim()};
    if (await attempt(null, () => wk.api("POST", "/api/v1/cameras", body), cameraErrors)) {
      form.reset();
      loadCameras();
    }
  });
  wk.onEvent((event) => { if (event.type === "camera") loadCameras(); });

  attempt(null, () => loadUsers().then(loadKeys), userErrors);
  attempt(null, loadCameras, cameraErrors);
})();
