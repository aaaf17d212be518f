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
  return (face.unknown ? "unknown" : face.name) + d;
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
    const colour = face.unknown ? "#d00" : "#0a0";
    ctx.strokeStyle = colour;
    ctx.strokeRect(left, top, width, height);
    const text = label(face);
    const tw = ctx.measureText(text).width + 6 * unit;
    const th = 16 * unit;
    const y = top >= th ? top - th : top + height;
    ctx.fillStyle = colour;
    ctx.fillRect(left, y, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, left + 3 * unit, y + 12 * unit);
  }
  canvas.dataset.faces = JSON.stringify(faces.map((f) => ({ name: f.name, distance: f.distance, location: f.location })));
}

function listFaces(result) {
  const ul = $("#results");
  ul.innerHTML = "";
  for (const face of result.face_list) {
    const li = document.createElement("li");
    li.className = "result " + (face.unknown ? "unknown" : "known");
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
