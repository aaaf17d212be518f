// faceprint web page: recognise a photo (file, drop or webcam), enrol it, manage people.
// Plain JS against the same app's /v1 API; no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { photo: null, people: [] };

// --- API -------------------------------------------------------------------------------------
const keyInput = $("#api-key");
keyInput.value = sessionStorage.getItem("faceprint-key") || "";  // this tab only: not kept on disk
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("faceprint-key", keyInput.value);
  loadPeople();
});

async function api(method, path, body) {
  const headers = {};
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  const type = res.headers.get("content-type") || "";
  if (!res.ok) {
    const err = type.includes("json") ? (await res.json()).error : null;
    throw new Error(err ? `${err.message} (${err.code})` : `${res.status} ${res.statusText}`);
  }
  return type.includes("json") ? res.json() : res.blob();
}

function imageForm(blob) {
  const form = new FormData();
  form.append("image", blob, blob.name || "photo.jpg");
  return form;
}

function say(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// --- recognise ---------------------------------------------------------------------------------
async function useImage(blob) {
  state.photo = blob;
  document.body.dataset.busy = "1";  // "0" when the answer is shown (tests wait on it)
  say("Looking for faces...");
  $("#results").innerHTML = "";
  const bitmap = await loadBitmap(blob);
  drawPhoto(bitmap, []);
  try {
    const result = await api("POST", "/v1/identify?top_k=3", imageForm(blob));
    drawPhoto(bitmap, result.face_list);
    listFaces(result);
  } catch (e) {
    say(e.message, true);
  } finally {
    document.body.dataset.busy = "0";
  }
}

function loadBitmap(blob) {
  // An <img> applies the EXIF orientation, as the server does, so boxes line up.
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = URL.createObjectURL(blob);
  }).catch((e) => { say(e.message, true); return null; });
}

function label(face) {
  const d = face.distance === null ? "" : ` ${face.distance.toFixed(2)}`;
  // too_poor: the face's quality is below the service's floor, so no decision was made
  return (face.too_poor ? "too poor to decide" : face.unknown ? "unknown" : face.name) + d;
}

function drawPhoto(img, faces) {
  const canvas = $("#canvas");
  if (!img) { canvas.width = canvas.height = 0; return; }
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const unit = Math.max(1, Math.round(Math.max(canvas.width, canvas.height) / 400));
  ctx.font = `${12 * unit}px system-ui, sans-serif`;
  ctx.lineWidth = 2 * unit;
  for (const face of faces) {
    const { left, top, width, height } = face.location;
    const colour = face.too_poor ? "#b60" : face.unknown ? "#d00" : "#0a0";
    labelledBox(ctx, unit, [left, top, width, height], colour, label(face));
  }
  canvas.dataset.faces = JSON.stringify(faces.map((f) => ({ name: f.name, distance: f.distance, location: f.location })));
}

function listFaces(result) {
  const ul = $("#results");
  ul.innerHTML = "";
  for (const face of result.face_list) {
    const li = document.createElement("li");
    li.className = "result " + (face.too_poor ? "too-poor" : face.unknown ? "unknown" : "known");
    li.dataset.name = face.name || "";
    li.dataset.distance = face.distance === null ? "" : String(face.distance);
    const others = face.candidates.filter((c) => c.name !== face.name)
      .map((c) => `${c.name} ${c.distance.toFixed(2)}`).join(", ");
    li.textContent = label(face) + (others ? `  (also: ${others})` : "");
    ul.appendChild(li);
  }
  const n = result.face_num;
  say(n === 0 ? "No face found in this photo." : `${n} face${n > 1 ? "s" : ""} (threshold ${result.threshold}).`);
}

// file chooser and drag-and-drop
$("#file").addEventListener("change", (e) => { if (e.target.files[0]) useImage(e.target.files[0]); });
const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
  if (file) useImage(file); else say("Drop an image file.", true);
});

// webcam
let stream = null;
$("#webcam-btn").addEventListener("click", async () => {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (e) {
    say(`No webcam: ${e.message}`, true);
    return;
  }
  $("#video").srcObject = stream;
  $("#camera").hidden = false;
});
$("#capture-btn").addEventListener("click", () => {
  const video = $("#video");
  const c = document.createElement("canvas");
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext("2d").drawImage(video, 0, 0);
  c.toBlob((blob) => { blob.name = "webcam.jpg"; useImage(blob); }, "image/jpeg", 0.92);
});
$("#camera-stop").addEventListener("click", stopCamera);
function stopCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("#camera").hidden = true;
}

// --- enrol ---------------------------------------------------------------------------------------
$("#enrol-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("#enrol-name").value.trim();
  if (!state.photo) { say("Choose or take a photo first.", true); return; }
  try {
    await loadPeople();
    let person = state.people.find((p) => p.name === name);
    if (!person) person = await api("POST", "/v1/people", { name });
    await api("POST", `/v1/people/${person.id}/faces`, imageForm(state.photo));
    $("#enrol-name").value = "";
    await loadPeople();
    await useImage(state.photo);  // show the photo recognised as its new owner
    say(`Enrolled ${name}.`);
  } catch (err) {
    say(`Could not enrol: ${err.message}`, true);
  }
});

// --- people ----------------------------------------------------------------------------------------
async function loadPeople() {
  try {
    state.people = (await api("GET", "/v1/people")).people;
  } catch (e) {
    say(e.message, true);
    return;
  }
  health();
  const body = $("#people tbody");
  body.innerHTML = "";
  for (const p of state.people) {
    const tr = document.createElement("tr");
    tr.dataset.id = p.id;
    tr.dataset.name = p.name;
    tr.innerHTML = `<td><input class="rename" aria-label="name"></td><td class="count"></td>
      <td><button class="show-btn plain" type="button">faces</button>
          <button class="rename-btn plain" type="button">rename</button>
          <button class="delete-btn danger" type="button">delete</button></td>`;
    tr.querySelector("input.rename").value = p.name;
    tr.querySelector(".count").textContent = p.samples;
    tr.querySelector(".show-btn").onclick = () => showFaces(p.id);
    tr.querySelector(".rename-btn").onclick = () => rename(p, tr.querySelector("input.rename").value.trim());
    tr.querySelector(".delete-btn").onclick = () => removePerson(p);
    body.appendChild(tr);
  }
}

async function rename(person, name) {
  if (!name || name === person.name) return;
  try {
    await api("PATCH", `/v1/people/${person.id}`, { name });
    say(`Renamed ${person.name} to ${name}.`);
  } catch (e) {
    say(e.message, true);
  }
  await loadPeople();
}

async function removePerson(person) {
  if (!confirm(`Delete ${person.name} and their ${person.samples} face(s)?`)) return;
  try {
    await api("DELETE", `/v1/people/${person.id}`);
    say(`Deleted ${person.name}.`);
    $("#faces").hidden = true;
  } catch (e) {
    say(e.message, true);
  }
  await loadPeople();
}

async function showFaces(id) {
  const person = await api("GET", `/v1/people/${id}`);
  $("#faces").hidden = false;
  $("#faces-title").textContent = `${person.name}: ${person.faces.length} face(s)`;
  const list = $("#face-list");
  list.innerHTML = "";
  for (const f of person.faces) {
    const div = document.createElement("div");
    div.className = "face";
    div.dataset.id = f.id;
    const thumb = document.createElement("canvas");
    thumb.width = thumb.height = 96;
    const del = document.createElement("button");
    del.className = "delete-face danger";
    del.type = "button";
    del.textContent = "remove";
    del.onclick = async () => {
      try {
        await api("DELETE", `/v1/people/${id}/faces/${f.id}`);
      } catch (e) {
        say(e.message, true);
      }
      await loadPeople();
      await showFaces(id);
    };
    div.append(thumb, del);
    list.appendChild(div);
    if (f.image_url) drawThumb(thumb, f).catch(() => {});
  }
}

async function drawThumb(canvas, face) {
  // Fetched (not <img src>) so the API key header goes along.
  const img = await loadBitmap(await api("GET", face.image_url));
  if (!img) return;
  const loc = face.location || { left: 0, top: 0, width: img.naturalWidth, height: img.naturalHeight };
  const side = Math.max(loc.width, loc.height) * 1.3;
  const cx = loc.left + loc.width / 2, cy = loc.top + loc.height / 2;
  canvas.getContext("2d").drawImage(img, cx - side / 2, cy - side / 2, side, side, 0, 0, 96, 96);
}

$("#refresh").addEventListener("click", loadPeople);

async function health() {
  try {
    const h = await (await fetch("/healthz")).json();
    $("#health").textContent = `${h.model} · ${h.detector} · ${h.people} people, ${h.samples} faces`;
  } catch (e) {
    $("#health").textContent = "server not answering";
  }
}

loadPeople();

// --- live ----------------------------------------------------------------------------------------
// The Live view: webcam frames go to the WebSocket /v1/live one at a time (the next one when the
// answer to the last has come, so the server never queues), the answers' boxes are drawn over the
// video, their events listed, and unknown faces can be enrolled from the frame they were seen in.
const LIVE_WIDTH = 640;  // frames wider than this are scaled down before they are sent
const live = {
  ws: null, stream: null, running: false, ready: false,
  canvas: document.createElement("canvas"),  // the frame in flight (crops for enrolment come from it)
  pending: null,  // log entry of the frame in flight
  times: [],  // when the latest answers came (fps)
  crops: new Map(),  // unknown track -> canvas of its face
  greeted: new Map(),  // name -> when they were welcomed
};
// What tests (and curious users, in the console) can read: one entry per answered frame
// {frame, sent, answered (performance.now() ms), videoTime (the video's currentTime at capture),
// ms (server), faces}, every event {kind, track, name, unknown, distance, time, at}, and greetings.
window.faceprintLive = { log: [], events: [], spoken: [] };

function liveSay(text, isError = false) {
  const el = $("#live-status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function showView() {
  const isLive = location.hash === "#live";
  $("#recognise").hidden = isLive;
  $("#live").hidden = !isLive;
  $("#view-photo").classList.toggle("active", !isLive);
  $("#view-live").classList.toggle("active", isLive);
  if (!isLive) stopLive();
}

async function startLive() {
  if (live.running) return;
  liveSay("Starting the camera...");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  } catch (e) {
    liveSay(`No webcam: ${e.message}`, true);
    return;
  }
  const video = $("#live-video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  while (video.videoWidth === 0) await new Promise((r) => setTimeout(r, 50));
  live.stream = stream;
  live.running = true;
  live.ready = false;
  live.times = [];
  $("#live-start").disabled = true;
  $("#live-stop").disabled = false;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live`);
  live.ws = ws;
  // The key goes in the first message: browsers cannot set headers on a WebSocket, and a key in
  // the URL would be written to logs.
  ws.onopen = () => ws.send(JSON.stringify(keyInput.value ? { key: keyInput.value } : {}));
  ws.onmessage = (e) => { if (live.ws === ws) onLiveMessage(JSON.parse(e.data)); };
  ws.onclose = (e) => {
    if (live.ws !== ws) return;
    const why = live.error || e.reason;
    stopLive();
    liveSay(why ? `Live view stopped: ${why}` : "Live view stopped.", Boolean(why));
  };
  liveSay("Connecting...");
}

function stopLive() {
  const ws = live.ws;
  live.ws = null;
  live.running = live.ready = false;
  live.pending = null;
  live.error = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  $("#live-video").srcObject = null;
  const overlay = $("#live-overlay");
  overlay.width = overlay.height = 0;
  $("#live-start").disabled = false;
  $("#live-stop").disabled = true;
}

function onLiveMessage(msg) {
  if (msg.ready) {
    live.ready = true;
    liveSay(`Live: ${msg.model}, threshold ${msg.threshold}.`);
    sendFrame();
    return;
  }
  if (msg.error && msg.frame == null) {  // about the connection (a refused key) or a bad message
    live.error = `${msg.error.message} (${msg.error.code})`;
    liveSay(live.error, true);
    return;
  }
  const entry = live.pending || {};
  live.pending = null;
  entry.frame = msg.frame;
  entry.answered = performance.now();
  if (msg.error) {
    entry.error = msg.error.code;
    liveSay(`Frame ${msg.frame}: ${msg.error.message}`, true);
    record(entry);
    sendFrame();
    return;
  }
  entry.ms = msg.ms;
  entry.faces = msg.faces;
  record(entry);
  keepCrops(msg.faces);  // from the frame of this answer, before the next one replaces it
  const scale = live.canvas.width ? $("#live-video").videoWidth / live.canvas.width : 1;
  sendFrame();
  drawLive(msg.faces, scale);
  for (const ev of msg.events) addLiveEvent(ev);
  showFps(msg.ms);
}

function record(entry) {
  const log = window.faceprintLive.log;
  log.push(entry);
  if (log.length > 5000) log.splice(0, 1000);  // a long session does not grow without end
}

function sendFrame() {
  const ws = live.ws;
  if (!live.running || !live.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
  const video = $("#live-video");
  const w = Math.min(video.videoWidth, LIVE_WIDTH);
  const h = Math.round((video.videoHeight * w) / video.videoWidth);
  const c = live.canvas;
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  c.getContext("2d").drawImage(video, 0, 0, w, h);
  const entry = { sent: performance.now(), videoTime: video.currentTime };
  c.toBlob((blob) => {
    if (live.ws !== ws || !blob || ws.readyState !== WebSocket.OPEN) return;
    live.pending = entry;
    ws.send(blob);
  }, "image/jpeg", 0.8);
}

function liveLabel(face) {
  const d = face.distance === null ? "" : ` ${face.distance.toFixed(2)}`;
  if (!face.decided) return "...";
  return (face.unknown ? "unknown" : face.name) + d;
}

function drawLive(faces, scale) {
  const video = $("#live-video");
  const overlay = $("#live-overlay");
  if (overlay.width !== video.videoWidth || overlay.height !== video.videoHeight) {
    overlay.width = video.videoWidth;
    overlay.height = video.videoHeight;
  }
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const unit = Math.max(1, Math.round(overlay.width / 400));
  ctx.font = `${12 * unit}px system-ui, sans-serif`;
  ctx.lineWidth = 2 * unit;
  for (const face of faces) {
    const [left, top, width, height] = face.box.map((v) => v * scale);
    const colour = !face.decided ? "#888" : face.unknown ? "#d00" : "#0a0";
    labelledBox(ctx, unit, [left, top, width, height], colour, liveLabel(face));
  }
  overlay.dataset.faces = JSON.stringify(faces.map((f) => ({ track: f.track, name: f.name, unknown: f.unknown, distance: f.distance })));
}

function showFps(serverMs) {
  const now = performance.now();
  live.times.push(now);
  while (live.times.length > 2 && now - live.times[0] > 3000) live.times.shift();  // the last 3 s
  const n = live.times.length;
  if (n < 2) return;
  const fps = ((n - 1) * 1000) / (now - live.times[0]);
  const el = $("#live-fps");
  el.dataset.fps = fps.toFixed(2);
  el.textContent = `${fps.toFixed(1)} fps · server ${Math.round(serverMs)} ms per frame`;
}

function addLiveEvent(ev) {
  ev.at = performance.now();
  window.faceprintLive.events.push(ev);
  const li = document.createElement("li");
  li.className = `event ${ev.kind}` + (ev.unknown ? " unknown" : "");
  li.dataset.kind = ev.kind;
  li.dataset.track = ev.track;
  li.dataset.name = ev.name || "";
  const who = ev.unknown ? "unknown" : ev.name;
  const d = ev.distance === null ? "" : ` (${ev.distance.toFixed(2)})`;
  const what = { appear: "appeared", recognised: `recognised as ${who}${d}`, leave: "left" }[ev.kind] || ev.kind;
  li.textContent = `${new Date().toLocaleTimeString()} · face ${ev.track} ${what}`;
  const list = $("#live-events");
  list.appendChild(li);
  while (list.children.length > 200) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  if (ev.kind === "recognised" && ev.unknown) offerEnrol(ev.track);
  if (ev.kind === "recognised" && ev.name) greet(ev.name);
}

function keepCrops(faces) {
  for (const face of faces) {
    if (!face.unknown) continue;
    // The face with a margin around it: enough for the detector to find it again in the crop.
    const [l, t, w, h] = face.box;
    const side = Math.max(w, h) * 2;
    const x = Math.max(0, l + w / 2 - side / 2), y = Math.max(0, t + h / 2 - side / 2);
    const cw = Math.min(side, live.canvas.width - x), ch = Math.min(side, live.canvas.height - y);
    if (cw < 16 || ch < 16) continue;
    const crop = live.crops.get(face.track) || document.createElement("canvas");
    crop.width = Math.round(cw);
    crop.height = Math.round(ch);
    crop.getContext("2d").drawImage(live.canvas, x, y, cw, ch, 0, 0, crop.width, crop.height);
    live.crops.set(face.track, crop);
    const thumb = document.querySelector(`#live-unknown li[data-track="${face.track}"] canvas`);
    if (thumb) thumb.getContext("2d").drawImage(crop, 0, 0, 64, 64);
  }
}

function offerEnrol(track) {
  const list = $("#live-unknown");
  if (list.querySelector(`li[data-track="${track}"]`)) return;
  const li = document.createElement("li");
  li.dataset.track = track;
  li.innerHTML = `<canvas width="64" height="64"></canvas>
    <input class="live-name" placeholder="name" maxlength="200" aria-label="name">
    <button class="live-enrol" type="button">Enrol</button>`;
  const crop = live.crops.get(track);
  if (crop) li.querySelector("canvas").getContext("2d").drawImage(crop, 0, 0, 64, 64);
  const go = () => enrolLive(track, li);
  li.querySelector(".live-enrol").onclick = go;
  li.querySelector(".live-name").addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  list.prepend(li);
  while (list.children.length > 8) {  // the oldest go, with their crops
    live.crops.delete(Number(list.lastElementChild.dataset.track));
    list.lastElementChild.remove();
  }
}

async function enrolLive(track, li) {
  const name = li.querySelector(".live-name").value.trim();
  const crop = live.crops.get(track);
  if (!name) { liveSay("Type the person's name first.", true); return; }
  if (!crop) { liveSay("No picture of this face yet.", true); return; }
  li.querySelector(".live-enrol").disabled = true;
  try {
    const blob = await new Promise((resolve) => crop.toBlob(resolve, "image/jpeg", 0.92));
    blob.name = `live-face-${track}.jpg`;
    await loadPeople();
    let person = state.people.find((p) => p.name === name);
    if (!person) person = await api("POST", "/v1/people", { name });
    await api("POST", `/v1/people/${person.id}/faces`, imageForm(blob));
    li.remove();
    live.crops.delete(track);
    // Faces on screen were decided before this enrolment: have them decided again.
    if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ type: "reset" }));
    liveSay(`Enrolled ${name}.`);
    await loadPeople();
  } catch (e) {
    liveSay(`Could not enrol: ${e.message}`, true);
    li.querySelector(".live-enrol").disabled = false;
  }
}

function greet(name) {
  if (!$("#live-speak").checked) return;
  const last = live.greeted.get(name);
  if (last !== undefined && performance.now() - last < 60_000) return;  // not again for a minute
  live.greeted.set(name, performance.now());
  const text = `Welcome, ${name}`;
  window.faceprintLive.spoken.push(text);
  if ("speechSynthesis" in window) speechSynthesis.speak(new SpeechSynthesisUtterance(text));
}

$("#live-start").addEventListener("click", startLive);
$("#live-stop").addEventListener("click", () => { stopLive(); liveSay("Live view stopped."); });
window.addEventListener("hashchange", showView);
showView();

// A face's box with its label on a coloured band above it (below when there is no room).
function labelledBox(ctx, unit, [left, top, width, height], colour, text) {
  ctx.strokeStyle = colour;
  ctx.strokeRect(left, top, width, height);
  const tw = ctx.measureText(text).width + 6 * unit;
  const th = 16 * unit;
  const y = top >= th ? top - th : top + height;
  ctx.fillStyle = colour;
  ctx.fillRect(left, y, tw, th);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, left + 3 * unit, y + 12 * unit);
}
