"use strict";
// One incident to review: its snapshot, clip and sound, the transcript, the evidence, the timeline and the
// report; operators change its status, assign it and delete its snapshot. Live news of it reloads it.
(async () => {
  const id = JSON.parse(document.getElementById("incident-id").textContent);
  const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
  const api = `/api/v1/incidents/${id}`;
  const $ = (elementId) => document.getElementById(elementId);
  let incident = null, analysis = null, place = "";

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }
  // Seconds into the recording, as m:ss.s.
  const mediaTime = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
  const percent = (value) => `${Math.round(value * 100)} %`;
  const statusName = (status) => vocabulary.statuses[status] || status;

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function header() {
    $("title").textContent = `${incident.category_name} · incident ${incident.id}`;
    document.title = `${incident.category_name} · Watchkeeper`;
    $("severity").className = `sev sev-${incident.severity}`;
    $("severity").textContent = `${incident.severity} ${vocabulary.severities[incident.severity] || ""}`;
    $("status").className = `status status-${incident.status}`;
    $("status").textContent = statusName(incident.status);
    $("where").textContent = [incident.camera, place, incident.zone,
                              new Date(incident.created_at).toLocaleString()].filter(Boolean).join(" · ");
    $("summary").textContent = incident.summary;
  }

  function details() {
    const facts = [
      ["Category", `${incident.category_name} (${incident.category})`],
      ["Severity", `${incident.severity} ${vocabulary.severities[incident.severity] || ""}`],
      ["Status", statusName(incident.status) + (incident.status_note ? ` – “${incident.status_note}”` : "")],
      ["Confidence", percent(incident.confidence)],
      ["Camera", incident.camera || "–"], ["Location", place || "–"],
      ["Time", new Date(incident.created_at).toLocaleString()],
      ["In the recording", `${mediaTime(incident.t_start_s)} – ${mediaTime(incident.t_end_s)}`],
      ["Modalities", incident.modalities.join(", ") || "–"],
      ["Assigned to", incident.assigned_to_name || "nobody"],
    ];
    $("details").replaceChildren(...facts.flatMap(([name, value]) => [element("dt", name), element("dd", value)]));
  }

  // The file is fetched again only when it changed, so a reload does not stop a clip being watched.
  function source(media, url) {
    if (media.dataset.src === url) return;
    media.dataset.src = url;
    media.src = url;
  }

  async function media() {
    const files = new Set(incident.evidence_files);
    const evidence = (kind) => `${api}/evidence/${kind}`;
    $("snapshot").hidden = !files.has("snapshot");
    if (files.has("snapshot")) {
      source($("snapshot-image"), evidence("snapshot"));
      $("snapshot-save").href = evidence("snapshot");
    }
    $("weapon").hidden = !files.has("weapon");
    if (files.has("weapon")) source($("weapon-image"), evidence("weapon"));
    $("clip").hidden = !files.has("clip");
    if (files.has("clip")) source($("clip").querySelector("video"), evidence("clip"));
    $("sound").hidden = !files.has("audio");
    if (files.has("audio")) source($("sound").querySelector("audio"), evidence("audio"));
    const live = Boolean(incident.data.live);
    if (!files.size && !live && analysis && ["video", "image"].includes(analysis.media_type)) {
      await keyFrame();
    }
    const absent = [["snapshot", "snapshot"], ["clip", "clip"], ["audio", "sound"]]
      .filter(([kind]) => !files.has(kind)).map(([, name]) => name);
    let missing = "";
    if (!live && $("key-frame").hidden) {
      missing = "This incident comes from an analysed file: no snapshot, clip or sound is kept.";
    } else if (live && absent.length) {
      missing = incident.data.live.state === "active" && files.size
        ? "The rest of the evidence is still being recorded." : `No ${absent.join(", ")} kept for this incident.`;
    }
    $("no-media").textContent = missing;
    $("no-media").hidden = !missing;
  }

  // A file analysis keeps no evidence files; its report draws the key frame from the file while it is there.
  async function keyFrame() {
    const figure = $("key-frame");
    if (!figure.hidden) return;
    try {
      const report = await wk.api("GET", `${api}/report?format=json`);
      const picture = ((report.incidents || [])[0] || {}).pictures?.[0];
      if (!picture) return;
      figure.querySelector("img").src = `data:image/jpeg;base64,${picture.jpeg_base64}`;
      figure.querySelector("img").alt = picture.caption || "Key frame of the analysed file";
      figure.querySelector("figcaption").textContent = `Key frame of the analysed file: ${picture.caption || ""}`;
      figure.hidden = false;
    } catch (failure) { /* the file may be gone: the page says there is no media */ }
  }

  function transcript() {
    const segments = (analysis && analysis.result.transcript) || [];
    $("transcript").replaceChildren(...segments.map((segment) => {
      const item = element("li");
      const during = segment.t_end_s >= incident.t_start_s && segment.t_start_s <= incident.t_end_s;
      if (during) item.className = "during";
      item.append(element("span", mediaTime(segment.t_start_s), "time"), wk.text(` ${segment.text.trim()}`));
      if (during) item.append(element("span", " (during the incident)", "sr-only"));
      return item;
    }));
    $("no-transcript").hidden = segments.length > 0;
  }

  function evidenceTable() {
    const lines = incident.data.evidence || [];
    $("evidence").querySelector("tbody").replaceChildren(...lines.map((line) => {
      const d = line.detection, tr = element("tr");
      const time = d.t_end_s > d.t_start_s ? `${mediaTime(d.t_start_s)} – ${mediaTime(d.t_end_s)}` : mediaTime(d.t_start_s);
      [["Modality", d.modality], ["Label", d.label], ["Score", percent(d.score)], ["Time", time],
       ["Contribution", line.contribution.toFixed(2)]].forEach(([label, value]) => {
        const td = element("td", value);
        td.dataset.label = label;
        tr.append(td);
      });
      return tr;
    }));
    $("no-evidence").hidden = lines.length > 0;
  }

  function timelineItem(when, what, note) {
    const item = element("li");
    item.append(element("span", when, "time"), element("span", what));
    if (note) item.append(element("q", note, "note"));
    return item;
  }

  async function timeline() {
    const recording = [[incident.t_start_s, "The incident starts"],
                       ...(incident.data.evidence || []).map((line) => [line.detection.t_start_s,
                         `${line.detection.modality}: ${line.detection.label} (${percent(line.detection.score)})`]),
                       [incident.t_end_s, "The incident ends"]];
    recording.sort((a, b) => a[0] - b[0]);
    $("recording").replaceChildren(...recording.map(([t, what]) => timelineItem(mediaTime(t), what)));
    const history = await wk.api("GET", `${api}/history`).catch(() => []);
    const described = history.map((entry) => {
      const at = new Date(entry.at).toLocaleString(), who = entry.actor_name, d = entry.details;
      if (entry.action === "incident.status") return timelineItem(at, `${who}: ${statusName(d.to)}`, d.note);
      if (entry.action === "incident.assign") {
        return timelineItem(at, d.to ? `${who} assigned it to ${d.name}` : `${who} unassigned it`, d.note);
      }
      if (entry.action === "incident.evidence.delete") return timelineItem(at, `${who} deleted the ${d.kind}`);
      return timelineItem(at, `${who}: ${entry.action}`);
    });
    $("handling").replaceChildren(timelineItem(new Date(incident.created_at).toLocaleString(), "Recorded"), ...described);
  }

  function actions() {
    document.querySelectorAll("[data-status]").forEach((button) => {
      button.disabled = button.dataset.status === incident.status;  // already so
    });
    const assignee = $("assignee");
    if (!assignee) return;
    const wanted = incident.assigned_to == null ? "" : String(incident.assigned_to);
    // An assignee since disabled or demoted stays shown: "Nobody" here would unassign on the next Assign.
    if (wanted && ![...assignee.options].some((option) => option.value === wanted)) {
      const gone = element("option", `${incident.assigned_to_name || "user " + wanted} (no longer assignable)`);
      gone.value = wanted;
      gone.disabled = true;
      assignee.append(gone);
    }
    assignee.value = wanted;
  }

  async function load() {
    try {
      incident = await wk.api("GET", api);
    } catch (failure) {
      showError(`The incident could not be loaded: ${failure.message}`);
      return;
    }
    showError("");
    if (analysis === null) analysis = await wk.api("GET", `/api/v1/analyses/${incident.analysis_id}`).catch(() => null);
    if (incident.camera && !place) {
      place = await wk.api("GET", `/api/v1/cameras/${encodeURIComponent(incident.camera)}`)
        .then((camera) => camera.location || "").catch(() => "");  // a file analysis's camera is only a name
    }
    header();
    details();
    await media();
    transcript();
    evidenceTable();
    actions();
    await timeline();
  }

  async function change(body, done) {
    const result = $("action-result");
    try {
      await wk.api("PATCH", api, body);
      result.textContent = done;
      await load();
    } catch (failure) {
      result.textContent = `Not changed: ${failure.message}`;
    }
  }

  if ($("assignee")) {  // operators and admins
    document.querySelectorAll("[data-status]").forEach((button) => button.addEventListener("click", async () => {
      const note = $("note").value.trim();
      await change({status: button.dataset.status, note: note || null}, `Status set to ${statusName(button.dataset.status)}.`);
      $("note").value = "";
    }));
    const users = await wk.api("GET", "/api/v1/users/assignable").catch(() => []);
    $("assignee").append(...users.map((user) => {
      const option = element("option", `${user.name} (${user.role})`);
      option.value = String(user.id);
      return option;
    }));

    $("assign").addEventListener("click", () => {
      const value = $("assignee").value;
      const name = value ? $("assignee").selectedOptions[0].textContent : "nobody";
      change({assigned_to: value ? Number(value) : null}, `Assigned to ${name}.`);
    });
  }
  const remove = $("snapshot-delete");
  if (remove) {
    remove.addEventListener("click", async () => {
      if (!confirm("Delete the snapshot of this incident? This cannot be undone.")) return;
      try {
        await wk.api("DELETE", `${api}/evidence/snapshot`);
        $("action-result").textContent = "Snapshot deleted.";
        await load();
      } catch (failure) {
        showError(`The snapshot was not deleted: ${failure.message}`);
      }
    });
  }

  wk.onEvent((event) => {
    if (event.incident === id && (event.type === "incident" || event.type === "evidence")) load();
  });
  await load();
})();
