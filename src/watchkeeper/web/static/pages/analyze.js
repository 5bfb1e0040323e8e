"use strict";
// Analyse a file: upload it (with its progress), submit it as a job and follow the job, then show the result:
// the verdict, the incidents, the assessment's scores, the frames with their boxes drawn over the uploaded file
// itself (nothing is downloaded again), the sound events as a timeline, and the transcript.
(() => {
  const $ = (id) => document.getElementById(id);
  const input = $("media-file"), zone = $("drop-zone"), status = $("status"), cancel = $("cancel");
  const MAX_FRAMES = 24;  // a long video has hundreds of sampled frames: a page of canvases is enough
  const MAX_CANVAS_PX = 960;
  let current = null;  // the analysis under way: its upload request, then its job id

  const {node, svg} = wk;
  const seconds = (t) => `${Number(t).toFixed(1)} s`;
  const percent = (x) => `${Math.round(x * 100)}%`;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const soundName = (label) => {
    const name = String(label).replace(/^audio:/, "").replace(/_/g, " ");
    return name.charAt(0).toUpperCase() + name.slice(1);
  };

  // -- upload and job ------------------------------------------------------------------------------------
  // XMLHttpRequest rather than wk.api: fetch() reports no upload progress.
  function upload(file) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      current.request = request;
      request.open("POST", "/upload");
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRF-Token",
        decodeURIComponent((document.cookie.match(/(?:^|; )wk_csrf=([^;]*)/) || [])[1] || ""));
      request.responseType = "json";
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) setProgress("upload", event.loaded / event.total * 100, "");
      });
      request.addEventListener("load", () => {
        if (request.status === 401) location.assign("/login?next=" + encodeURIComponent(location.pathname));
        const detail = request.response && request.response.detail;
        if (request.status === 200) resolve(request.response);
        else reject(new Error(detail || `the upload failed (${request.status})`));
      });
      request.addEventListener("error", () => reject(new Error("the upload failed: the server could not be reached")));
      request.addEventListener("abort", () => reject(new Error("Cancelled.")));
      const form = new FormData();
      form.append("file", file);
      request.send(form);
    });
  }

  async function follow(jobId) {
    for (;;) {
      const job = await wk.api("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}`);
      setProgress("job", job.progress, job.state);
      if (job.state === "succeeded") return job;
      if (job.state === "failed") throw new Error((job.error && job.error.message) || "the analysis failed");
      if (job.state === "cancelled") throw new Error("Cancelled.");
      await sleep(500);
    }
  }

  function setProgress(step, value, word) {
    $(`${step}-progress`).value = value;
    $(`${step}-text`).textContent = `${Math.round(value)}%${word ? " · " + word : ""}`;
  }

  async function analyse(file) {
    if (current || !file) return;
    current = {};
    input.disabled = true;
    $("result").hidden = true;
    $("progress").hidden = false;
    $("progress-title").textContent = file.name;
    setProgress("upload", 0, "");
    setProgress("job", 0, "");
    status.className = "";
    status.textContent = "Uploading…";
    cancel.hidden = false;
    try {
      const stored = await upload(file);
      setProgress("upload", 100, "done");
      status.textContent = "Analysing…";
      const job = await wk.api("POST", "/api/v1/analyses", {source: stored.file_path, media_type: stored.media_type});
      current.jobId = job.id;
      const done = await follow(job.id);
      cancel.hidden = true;
      status.textContent = "Done.";
      await show(done.result, done.analysis_id, file);
    } catch (error) {
      status.className = "error";
      status.textContent = error.message;
    } finally {
      current = null;
      input.disabled = false;
      input.value = "";  // choosing the same file again analyses it again
      cancel.hidden = true;
    }
  }

  cancel.addEventListener("click", async () => {
    if (!current) return;
    if (current.jobId) {
      await wk.api("POST", `/api/v1/jobs/${encodeURIComponent(current.jobId)}/cancel`).catch((error) => {
        status.textContent = error.message;  // it finished first
      });
    } else if (current.request) {
      current.request.abort();
    }
  });
  input.addEventListener("change", () => analyse(input.files[0]));
  // The drop zone only adds dragging: the file input in it is the keyboard's way.
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    analyse(event.dataTransfer.files[0]);
  });

  // -- the result ----------------------------------------------------------------------------------------
  async function show(result, analysisId, file) {
    $("verdict").textContent = result.crime_detected ? `Crime detected: ${result.crime_type}` : "No crime detected";
    $("verdict").className = result.crime_detected ? "found" : "";
    $("evidence").textContent = result.evidence_description;
    $("verdict-meta").textContent = [result.media.media_type, `${result.confidence} confidence`,
      `judged by ${result.provider}`, `analysis ${analysisId}`].join(" · ");
    const report = `/api/v1/analyses/${encodeURIComponent(analysisId)}/report?format=`;
    $("report-pdf").href = report + "pdf";
    $("report-html").href = report + "html&download=false";
    // The incidents' rows are stored in the result's order; their ids make the links.
    const stored = await wk.api("GET", `/api/v1/incidents?analysis_id=${encodeURIComponent(analysisId)}&limit=100`);
    showIncidents(result.incidents, stored.items.map((row) => row.id).sort((a, b) => a - b));
    showAssessment(result.assessment);
    $("result").hidden = false;
    showTranscript(result.transcript);
    showSounds(result.audio_events, result.media.duration_s);
    await showFrames(result.frames, result.media.media_type, file);
  }

  function showIncidents(incidents, ids) {
    const list = $("incidents");
    list.replaceChildren();
    $("no-incidents").hidden = incidents.length > 0;
    incidents.forEach((incident, n) => {
      const badge = node("span", `sev sev-${incident.severity}`, `${incident.severity} ${incident.severity_label}`);
      const name = ids[n] ? node("a", "", incident.category_name) : node("strong", "", incident.category_name);
      if (ids[n]) name.href = `/incidents/${ids[n]}`;
      list.append(node("li", "", badge, " ", name,
        node("span", "muted", ` · ${seconds(incident.t_start_s)}–${seconds(incident.t_end_s)} · `
                              + `${percent(incident.confidence)} confidence`),
        node("p", "", incident.summary)));
    });
  }

  // Seed 001's scores of the assessment, each a small bar with its number.
  const SCORES = [["visual_score", "Visual"], ["audio_score", "Audio"], ["text_alignment_score", "Text alignment"],
                  ["multimodal_agreement", "Agreement"], ["threat_severity_index", "Threat severity index"]];
  function showAssessment(assessment) {
    const scores = $("scores");
    scores.replaceChildren();
    $("reasoning").textContent = assessment ? assessment.reasoning_summary : "No assessment.";
    if (!assessment) return;
    for (const [key, label] of SCORES) {
      const bar = node("span", "bar");
      bar.style.setProperty("--value", assessment[key]);
      scores.append(node("dt", "", label), node("dd", "", bar, node("span", "value", assessment[key].toFixed(2))));
    }
  }

  function showTranscript(segments) {
    $("transcript-card").hidden = segments.length === 0;
    $("transcript").replaceChildren(...segments.map((segment) => node("li", "",
      node("span", "muted", `${seconds(segment.t_start_s)}–${seconds(segment.t_end_s)} `), segment.text.trim())));
  }

  // -- the sound events: one row per label, a bar per event, stronger events more opaque -------------------
  let drawnSounds = null;
  function showSounds(events, duration) {
    $("sounds-card").hidden = events.length === 0;
    drawnSounds = events.length ? {events, duration} : null;
    drawSounds();
  }
  function drawSounds() {
    const box = $("timeline");
    if (!drawnSounds) { box.replaceChildren(); return; }
    const {events} = drawnSounds;
    const end = Math.max(drawnSounds.duration || 0, ...events.map((e) => e.t_end_s)) || 1;
    const labels = [...new Set(events.map((e) => e.label))];
    // Drawn at the box's own width so that the text keeps its size on a phone.
    const width = Math.max(box.clientWidth, 300), left = Math.min(140, width * 0.35), row = 28, top = 6;
    const height = top + labels.length * row + 24;
    const x = (t) => left + (width - left - 10) * t / end;
    const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true"});
    const step = niceStep(end, Math.max(2, Math.floor((width - left) / 70)));
    for (let t = 0; t <= end + 1e-9; t += step) {
      chart.append(svg("line", {x1: x(t), x2: x(t), y1: top, y2: height - 20, class: "gridline"}),
                   svg("text", {x: x(t), y: height - 6, class: "tick", "text-anchor": "middle"}, `${+t.toFixed(2)} s`));
    }
    labels.forEach((label, n) => {
      const y = top + n * row;
      chart.append(svg("text", {x: left - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "label"},
                       soundName(label)));
      for (const event of events.filter((e) => e.label === label)) {
        chart.append(svg("rect", {
          x: x(event.t_start_s), y: y + 4, height: row - 8, rx: 3, class: "event", "data-label": soundName(label),
          width: Math.max(2, x(event.t_end_s) - x(event.t_start_s)), "fill-opacity": 0.2 + 0.8 * event.score,
        }, svg("title", {}, `${soundName(label)}: ${seconds(event.t_start_s)}–${seconds(event.t_end_s)}, `
                            + `score ${event.score.toFixed(2)}`)));
      }
    });
    const table = node("table", "sr-only", node("caption", "", "Sound events"),
      node("thead", "", node("tr", "", ...["Sound", "From", "To", "Score"].map((h) => node("th", "", h)))),
      node("tbody", "", ...events.map((e) => node("tr", "", ...[soundName(e.label), seconds(e.t_start_s),
        seconds(e.t_end_s), e.score.toFixed(2)].map((v) => node("td", "", v))))));
    box.replaceChildren(chart, table);
  }
  function niceStep(span, ticks) {
    const raw = span / ticks, power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  }
  let resizing = 0;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(drawSounds, 150); });

  // -- the frames, with their detections' boxes --------------------------------------------------------------
  // The frames with detections first; an image's one frame, or a few of a quiet video's, otherwise.
  function framesToShow(frames) {
    const busy = frames.filter((f) => f.detections.some((d) => d.box_xywh_norm));
    if (busy.length) return busy.slice(0, MAX_FRAMES);
    const every = Math.max(1, Math.ceil(frames.length / 6));
    return frames.filter((_, n) => n % every === 0);
  }

  async function showFrames(frames, mediaType, file) {
    const list = $("frames"), note = $("frames-note");
    list.replaceChildren();
    note.hidden = true;
    $("frames-card").hidden = mediaType === "audio" || frames.length === 0;
    if (mediaType === "audio" || frames.length === 0) return;
    const url = URL.createObjectURL(file);
    try {
      const source = mediaType === "image" ? await loaded(Object.assign(new Image(), {src: url}), "load")
        : await loaded(Object.assign(document.createElement("video"), {src: url, muted: true, preload: "auto"}),
                       "loadeddata");
      const shown = framesToShow(frames);
      note.textContent = `${shown.length} of ${frames.length} sampled frames shown.`;
      note.hidden = shown.length === frames.length;
      for (const frame of shown) {
        if (mediaType === "video") await seek(source, frame.t_s);
        list.append(drawFrame(source, frame));
      }
    } catch (error) {
      list.append(node("li", "error", `This browser cannot show the ${mediaType}: ${error.message}`));
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function loaded(element, event) {
    return new Promise((resolve, reject) => {
      element.addEventListener(event, () => resolve(element), {once: true});
      element.addEventListener("error", () => reject(new Error("its format is not supported")), {once: true});
    });
  }

  function seek(video, t) {
    return new Promise((resolve) => {
      // Draw what there is rather than wait forever; 3 s drew black frames on a busy 2-core machine.
      const timer = setTimeout(resolve, 15000);
      video.addEventListener("seeked", () => { clearTimeout(timer); resolve(); }, {once: true});
      video.currentTime = Math.min(t, video.duration || t);
    });
  }

  function drawFrame(source, frame) {
    const width = source.videoWidth || source.naturalWidth, height = source.videoHeight || source.naturalHeight;
    const scale = Math.min(1, MAX_CANVAS_PX / width);
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext("2d");
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    const boxes = frame.detections.filter((d) => d.box_xywh_norm);
    const colour = getComputedStyle($("frames")).getPropertyValue("--box").trim();
    const line = Math.max(2, canvas.width / 320), font = Math.max(12, Math.round(canvas.width / 40));
    context.font = `600 ${font}px system-ui, sans-serif`;
    context.textBaseline = "top";
    const tabs = [];  // labels already placed: detections of one thing often share a box
    for (const detection of boxes) {
      const [x, y, w, h] = detection.box_xywh_norm.map((v, n) => v * (n % 2 ? canvas.height : canvas.width));
      context.strokeStyle = colour;
      context.lineWidth = line;
      context.strokeRect(x, y, w, h);
      // The label on a filled tab above the box (inside it at the top edge), readable on any picture.
      const text = `${detection.label} ${detection.score.toFixed(2)}`;
      const tab = {x, y: y - font - 4 >= 0 ? y - font - 4 : y, w: context.measureText(text).width + 8, h: font + 4};
      while (tabs.some((t) => t.x < tab.x + tab.w && tab.x < t.x + t.w && t.y < tab.y + tab.h && tab.y < t.y + t.h)) {
        tab.y += tab.h;
      }
      tabs.push(tab);
      context.fillStyle = colour;
      context.fillRect(tab.x, tab.y, tab.w, tab.h);
      context.fillStyle = "#fff";
      context.fillText(text, tab.x + 4, tab.y + 2);
    }
    const found = frame.detections.map((d) => `${d.label} ${percent(d.score)}`).join(", ") || "no detections";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Frame at ${seconds(frame.t_s)}: ${found}`);
    canvas.dataset.boxes = String(boxes.length);
    canvas.dataset.drawn = "true";
    return node("li", "", node("figure", "", canvas, node("figcaption", "", `${seconds(frame.t_s)} · ${found}`)));
  }
})();
