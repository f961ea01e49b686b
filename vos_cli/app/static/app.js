// vos annotate: point at objects on a frame, see the mask, track. No build step, no libraries.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const canvas = $("view");
const ctx = canvas.getContext("2d");

let info = null;          // /api/state
let frame = 0;            // the frame shown and annotated
let frameImage = null;    // its picture
let maskImage = null;     // the mask maker's answer, an RGBA PNG
let objects = [];         // {id, box: [x0, y0, x1, y1] | null, points: [[x, y, 1|0]], base}
let current = 0;          // index of the object being pointed at
let history = [];         // earlier states of `objects` / `current`, for undo
let drag = null;          // {x0, y0, x1, y1} while a box is drawn
let pending = false, inFlight = false;

function url(path, params = {}) {
  const q = new URLSearchParams({ ...params, token: TOKEN });
  return `${path}?${q}`;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Vos-Token": TOKEN },
    body: JSON.stringify(body),
  };
  options.headers = { ...(options.headers || {}), "X-Vos-Token": TOKEN };
  return fetch(path, options);
}

function say(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

async function failure(response) {
  try { return (await response.json()).error || response.statusText; }
  catch { return response.statusText; }
}

function colour(id) {
  const [r, g, b] = info.palette[id] || [255, 255, 255];
  return `rgb(${r}, ${g}, ${b})`;
}

// ---------------------------------------------------------------- drawing
function draw() {
  if (!frameImage) return;
  ctx.drawImage(frameImage, 0, 0);
  if (maskImage) ctx.drawImage(maskImage, 0, 0);
  const scale = canvas.width / canvas.getBoundingClientRect().width || 1;
  objects.forEach((o, i) => {
    ctx.lineWidth = (i === current ? 3 : 1.5) * scale;
    ctx.strokeStyle = colour(o.id);
    if (o.box) {
      const [x0, y0, x1, y1] = o.box;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    for (const [x, y, positive] of o.points) {
      ctx.beginPath();
      ctx.arc(x, y, 5 * scale, 0, 2 * Math.PI);
      ctx.fillStyle = positive ? "#2f855a" : "#c53030";
      ctx.fill();
      ctx.lineWidth = 1.5 * scale;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  });
  if (drag) {
    ctx.setLineDash([6 * scale, 4 * scale]);
    ctx.lineWidth = 2 * scale;
    ctx.strokeStyle = objects[current] ? colour(objects[current].id) : "#fff";
    ctx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
    ctx.setLineDash([]);
  }
}

function listObjects(pixels = {}) {
  const list = $("objects");
  list.replaceChildren();
  objects.forEach((o, i) => {
    const li = document.createElement("li");
    li.className = i === current ? "current" : "";
    li.dataset.id = o.id;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(o.id);
    const text = document.createElement("span");
    const what = o.box ? "box" : o.base ? "loaded mask" : "clicks";
    const n = pixels[o.id];
    text.textContent = `object ${o.id}: ${what}, ${o.points.length} click(s)` +
      (n === undefined ? "" : `, ${n} px`);
    li.append(swatch, text);
    li.addEventListener("click", () => { current = i; listObjects(pixels); draw(); });
    list.append(li);
  });
}

// ---------------------------------------------------------------- the mask maker
function active() {
  return objects.filter((o) => o.box || o.base || o.points.some((p) => p[2]));
}

async function predict() {
  if (inFlight) { pending = true; return; }
  inFlight = true;
  document.body.dataset.busy = "1";
  try {
    do {
      pending = false;
      const started = performance.now();
      const response = await api("/api/predict", { frame, objects: active() });
      if (!response.ok) { say(await failure(response), true); break; }
      const pixels = JSON.parse(response.headers.get("X-Vos-Pixels") || "{}");
      const blob = await response.blob();
      const image = new Image();
      image.src = URL.createObjectURL(blob);
      await image.decode();
      if (maskImage) URL.revokeObjectURL(maskImage.src);
      maskImage = image;
      const total = Object.values(pixels).reduce((a, b) => a + b, 0);
      document.body.dataset.maskPixels = String(total);
      listObjects(pixels);
      draw();
      say(`mask: ${total} px (${Math.round(performance.now() - started)} ms)`);
    } while (pending);
  } finally {
    inFlight = false;
    document.body.dataset.busy = "";
  }
}

function remember() {
  history.push(JSON.stringify({ objects, current }));
  if (history.length > 200) history.shift();
}

function changed() { listObjects(); draw(); predict(); }

function undo() {
  const last = history.pop();
  if (!last) return;
  ({ objects, current } = JSON.parse(last));
  changed();
}

function nextObject() {
  const o = objects[current];
  if (o && !o.box && !o.points.length && !o.base) return; // the current one is still empty
  remember();
  const id = objects.reduce((m, x) => Math.max(m, x.id), 0) + 1;
  if (id > 254) { say("a mask holds at most 254 objects", true); return; }
  objects.push({ id, box: null, points: [], base: false });
  current = objects.length - 1;
  listObjects(); draw();
}

function currentObject() {
  if (!objects.length) { objects.push({ id: 1, box: null, points: [], base: false }); current = 0; }
  return objects[current];
}

// ---------------------------------------------------------------- pointing
function at(event) {
  const rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * canvas.width / rect.width;
  const y = (event.clientY - rect.top) * canvas.height / rect.height;
  return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
}

canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("pointerdown", (e) => {
  if (!frameImage) return;
  canvas.setPointerCapture(e.pointerId);
  const [x, y] = at(e);
  drag = { x0: x, y0: y, x1: x, y1: y, sx: e.clientX, sy: e.clientY, button: e.button, shift: e.shiftKey };
});
canvas.addEventListener("pointermove", (e) => {
  if (!drag) return;
  [drag.x1, drag.y1] = at(e);
  draw();
});
canvas.addEventListener("pointerup", (e) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  [d.x1, d.y1] = at(e);
  const moved = Math.hypot(e.clientX - d.sx, e.clientY - d.sy) > 5;
  remember();
  const o = currentObject();
  if (moved && d.button === 0) {
    const box = [Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)];
    if (box[2] - box[0] < 2 || box[3] - box[1] < 2) { history.pop(); draw(); return; }
    if (o.box || o.base) { // a box on an object that has one: a new object
      const id = objects.reduce((m, x) => Math.max(m, x.id), 0) + 1;
      objects.push({ id, box, points: [], base: false });
      current = objects.length - 1;
    } else {
      o.box = box;
    }
  } else {
    const positive = !(d.shift || d.button === 2);
    const x = Math.min(d.x1, canvas.width - 0.5), y = Math.min(d.y1, canvas.height - 0.5);
    o.points.push([x, y, positive ? 1 : 0]);
  }
  changed();
});

document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  if (e.key === "z" || e.key === "Z") { e.preventDefault(); undo(); }
  else if (e.key === "n" || e.key === "N") { e.preventDefault(); nextObject(); }
});
$("undo").addEventListener("click", undo);
$("next").addEventListener("click", nextObject);
$("clear").addEventListener("click", () => {
  if (!objects.length) return;
  remember();
  objects = [];
  current = 0;
  changed();
});

// ---------------------------------------------------------------- frames
async function showFrame(n) {
  const image = new Image();
  image.src = url("/api/frame", { n });
  try { await image.decode(); }
  catch { say(`cannot show frame ${n}`, true); return false; }
  frame = n;
  frameImage = image;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  $("frame-number").textContent = String(n);
  document.body.dataset.frame = String(n);
  fit();
  draw();
  return true;
}

let scrubTimer = null;
$("scrub").addEventListener("input", () => {
  const n = Number($("scrub").value);
  $("frame-number").textContent = String(n);
  clearTimeout(scrubTimer);
  scrubTimer = setTimeout(async () => {
    if (n === frame) return;
    if (active().length && !confirm(`Annotate frame ${n} instead? The objects on frame ${frame} are cleared.`)) {
      $("scrub").value = frame;
      $("frame-number").textContent = String(frame);
      return;
    }
    if (await showFrame(n)) {
      objects = [];
      current = 0;
      history = [];
      maskImage = null;
      document.body.dataset.maskPixels = "0";
      listObjects();
      draw();
    }
  }, 150);
});
function fit() {
  // the frame as large as the stage allows, small clips scaled up; pointing maps back (at())
  if (!frameImage) return;
  const width = $("stage").clientWidth;
  const scale = Math.min(width / canvas.width, (0.75 * innerHeight) / canvas.height);
  canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
  canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
}
window.addEventListener("resize", () => { fit(); draw(); });

// ---------------------------------------------------------------- save and track
async function post(path, body, ask) {
  let response = await api(path, body);
  if (response.status === 409) {
    const exists = (await response.json()).exists || [];
    if (!confirm(`${ask}\n\n${exists.join("\n")}\n\nWrite over them?`)) return null;
    response = await api(path, { ...body, overwrite: true });
  }
  if (!response.ok) { say(await failure(response), true); return null; }
  return response.json();
}

$("save").addEventListener("click", async () => {
  const saved = await post("/api/save", {}, "The mask file exists already:");
  if (!saved) return;
  const p = $("saved");
  p.replaceChildren();
  const link = document.createElement("a");
  link.href = url(saved.url);
  link.download = "mask.png";
  link.textContent = saved.path;
  const code = document.createElement("code");
  code.textContent = saved.command;
  p.append("Saved ", link, ". Track it later with ", code);
  say("mask saved");
});

const OUTPUT_LINKS = {
  overlay: ["overlay.mp4", "overlay video"],
  cutout: [null, "cut-out"],
  matte: ["matte.mp4", "matte"],
  masks: ["masks.zip", "masks (zip of PNGs)"],
};

function showOutputs(job) {
  const list = $("outputs");
  list.replaceChildren();
  for (const [key, path] of Object.entries(job.outputs)) {
    let [name, label] = OUTPUT_LINKS[key] || [null, key];
    if (key === "cutout") {
      name = path.endsWith(".mov") ? "cutout.mov" : path.endsWith(".webm") ? "cutout.webm" : "cutout.zip";
    }
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = url(`/files/${name}`);
    link.download = name;
    link.textContent = label;
    link.dataset.output = key;
    const where = document.createElement("span");
    where.className = "small";
    where.textContent = ` ${path}`;
    li.append(link, where);
    list.append(li);
  }
  $("out-dir").textContent = info.out_dir;
  const video = $("result");
  if (job.outputs.overlay) {
    video.src = url("/files/overlay.mp4", { v: Date.now() });
    video.play().catch(() => {});
  }
  $("results").hidden = false;
}

async function watchJob() {
  const bar = $("progress");
  for (;;) {
    const response = await api("/api/job");
    if (!response.ok) { say(await failure(response), true); return; }
    const job = await response.json();
    document.body.dataset.job = job.state;
    bar.hidden = false;
    if (job.total) { bar.max = job.total; bar.value = job.done; } else { bar.removeAttribute("value"); }
    const of = job.total ? ` of ${job.total}` : "";
    $("job").textContent = job.state === "running" ? `tracking: frame ${job.done}${of}` : job.message;
    if (job.notes.length) $("job").title = job.notes.join("\n");
    if (job.state !== "running") {
      $("track").disabled = false;
      $("stop").hidden = true;
      if (job.state === "failed") say(job.message, true);
      else { bar.max = 1; bar.value = 1; showOutputs(job); say(job.message); }
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

$("track").addEventListener("click", async () => {
  const job = await post("/api/track", { cutout: $("cutout").value }, "These outputs exist already:");
  if (!job) return;
  $("track").disabled = true;
  $("stop").hidden = false;
  $("results").hidden = true;
  say("tracking...");
  watchJob();
});
$("stop").addEventListener("click", () => api("/api/cancel", {}));

// ---------------------------------------------------------------- start
(async () => {
  const response = await api("/api/state");
  if (!response.ok) { say(await failure(response), true); return; }
  info = await response.json();
  const v = info.video;
  $("video-name").textContent = `${v.name}: ${v.width}x${v.height}` + (v.frames ? `, ${v.frames} frames` : "");
  document.title = `vos annotate: ${v.name}`;
  const scrub = $("scrub");
  scrub.max = Math.max(0, (v.frames || 1) - 1);
  scrub.value = info.frame;
  await showFrame(info.frame);
  objects = info.base_ids.map((id) => ({ id, box: null, points: [], base: true }));
  listObjects();
  if (objects.length) await predict();
  document.body.dataset.ready = "1";
  say(objects.length ? `loaded ${info.mask}` : "drag a box around an object");
  if (info.job.state === "running") watchJob();
})();
