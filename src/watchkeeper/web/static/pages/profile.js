"use strict";
// The user's own account: changing the password, and the sessions signed in as them, each with its uptime
// (seed 002's session uptime: now minus when it started), the others revocable.
(() => {
  const rows = document.querySelector("#sessions tbody");
  const failure = document.getElementById("sessions-error");
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  document.querySelectorAll("time[datetime]").forEach((time) => { time.textContent = when(time.dateTime); });

  function uptime(since) {
    const s = Math.max(0, Math.floor((Date.now() - new Date(since).getTime()) / 1000));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
    return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  }

  function cell(row, label, value) {
    const td = row.insertCell();
    td.dataset.label = label;
    td.append(wk.text(value));
    return td;
  }

  function sessionRow(item) {
    const row = document.createElement("tr");
    row.dataset.id = item.id;
    cell(row, "Started", when(item.created_at));
    const up = cell(row, "Uptime", uptime(item.created_at));
    up.className = "uptime";
    up.dataset.since = item.created_at;
    cell(row, "Last seen", when(item.last_seen_at));
    cell(row, "Address", item.ip || "—");
    cell(row, "Browser", item.user_agent || "—").classList.add("agent");
    const actions = row.insertCell();
    actions.className = "actions-cell";
    if (item.current) {
      row.classList.add("current");
      const tag = document.createElement("span");
      tag.className = "current-tag";
      tag.append(wk.text("This session"));
      actions.append(tag);
    } else {
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "button small danger";
      revoke.append(wk.text("Revoke"));
      revoke.setAttribute("aria-label",
                          `Revoke the session started ${when(item.created_at)} from ${item.ip || "an unknown address"}`);
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await wk.api("DELETE", `/api/v1/auth/sessions/${item.id}`);
          await load();
        } catch (e) {
          show(e);
          revoke.disabled = false;
        }
      });
      actions.append(revoke);
    }
    return row;
  }

  function show(error) {
    failure.textContent = error.message;
    failure.hidden = false;
  }

  async function load() {
    try {
      const page = await wk.api("GET", "/api/v1/auth/sessions?limit=100");
      failure.hidden = true;
      rows.replaceChildren(...page.items.map(sessionRow));
    } catch (e) {
      show(e);
    }
  }

  document.getElementById("sessions-refresh").addEventListener("click", load);
  // The uptimes tick; the list itself is fetched again now and then (another device may sign in or out).
  const tick = () => rows.querySelectorAll(".uptime").forEach((td) => { td.textContent = uptime(td.dataset.since); });
  setInterval(tick, 1000);
  setInterval(load, 30000);
  load();

  const form = document.getElementById("password-form");
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const error = document.getElementById("password-error"), done = document.getElementById("password-done");
    error.hidden = true;
    done.hidden = true;
    if (form.new.value !== form.repeat.value) {
      error.textContent = "The two new passwords differ.";
      error.hidden = false;
      form.repeat.focus();
      return;
    }
    try {
      await wk.api("POST", "/api/v1/auth/me/password",
                   {current_password: form.current.value, new_password: form.new.value});
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      form.current.focus();
      return;
    }
    form.reset();
    done.textContent = "Password changed. Your other sessions have been signed out.";
    done.hidden = false;
    load();
  });
})();
