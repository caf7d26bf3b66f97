// The page of `gender serve`: photos go to POST /api/predict, one request each (the server
// batches concurrent ones). Everything the server or a file name says is shown as text
// (textContent), never parsed as HTML.
"use strict";

const state = { token: sessionStorage.getItem("gender-token") || "", waiting: [] };
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function pct(p) {
  return Math.round(p * 100) + " %";
}

function askToken() {
  $("token-form").hidden = false;
  $("token").focus();
}

async function loadModel() {
  const res = await fetch("/api/model", { headers: headers() });
  if (res.status === 401) {
    $("model").textContent = "This server needs its access token.";
    askToken();
    return;
  }
  if (!res.ok) {
    $("model").textContent = "Model details unavailable (" + res.status + ").";
    return;
  }
  const m = await res.json();
  const parts = ["Model " + m.name];
  if (m.trial_id) parts.push("trial " + m.trial_id);
  if (typeof m.test_accuracy === "number") parts.push("test accuracy " + pct(m.test_accuracy));
  const c = m.config || {};
  if (c.arch) parts.push(c.arch + (c.batch_norm ? "_bn" : "") + " width " + c.width + ", " + m.image_size + " px");
  if (m.members > 1) parts.push(m.members + " members");
  parts.push(m.engine + " on " + m.device);
  $("model").textContent = parts.join(" · ");
}

function modelLine(ref) {
  const bits = ["answered by model " + ref.id];
  if (ref.trial_id) bits.push("trial " + ref.trial_id);
  if (typeof ref.test_accuracy === "number") bits.push("test accuracy " + pct(ref.test_accuracy));
  return bits.join(" · ");
}

function card(file, batch) {
  const fig = el("figure", "card");
  fig.dataset.state = "pending";
  const img = el("img");
  img.alt = file.name;
  img.src = URL.createObjectURL(file);  // the browser turns it upright from its EXIF
  const cap = el("figcaption");
  cap.append(el("p", "name", file.name), el("p", "label", "Classifying…"));
  fig.append(img, cap);
  batch.append(fig);
  return fig;
}

function show(fig, body) {
  const cap = fig.querySelector("figcaption");
  const label = fig.querySelector(".label");
  const p = body.label === "male" ? body.prob_male : 1 - body.prob_male;
  label.textContent = (body.label === "male" ? "Male" : "Female") + ", " + pct(p);
  fig.dataset.state = "done";
  fig.dataset.label = body.label;
  fig.dataset.probMale = String(body.prob_male);
  const bar = el("div", "bar");
  bar.title = "P(male) = " + body.prob_male.toFixed(3);
  const fill = el("span");
  fill.style.width = (body.prob_male * 100).toFixed(1) + "%";
  bar.append(fill);
  cap.append(bar, el("p", "by", modelLine(body.model)));
}

function fail(fig, message) {
  fig.dataset.state = "error";
  fig.querySelector(".label").textContent = message;
}

async function classify(file, fig) {
  let res;
  try {
    res = await fetch("/api/predict", {
      method: "POST", body: file,
      headers: { ...headers(), "Content-Type": file.type || "application/octet-stream" },
    });
  } catch (e) {
    fail(fig, "The server did not answer.");
    return;
  }
  if (res.status === 401) {
    state.waiting.push([file, fig]);
    fig.querySelector(".label").textContent = "Waiting for the access token…";
    askToken();
    return;
  }
  let body = {};
  try { body = await res.json(); } catch (e) { /* not JSON: the status says enough */ }
  if (res.ok) show(fig, body);
  else fail(fig, body.error || "Failed (" + res.status + ").");
}

async function handle(files) {
  const images = Array.from(files);
  if (!images.length) return;
  $("status").textContent = "Classifying " + images.length + (images.length > 1 ? " photos…" : " photo…");
  // The newest choice on top, its photos in the order they were chosen.
  const batch = document.createDocumentFragment();
  const figs = images.map((f) => card(f, batch));
  $("results").prepend(batch);
  await Promise.all(images.map((f, i) => classify(f, figs[i])));
  const done = document.querySelectorAll('.card[data-state="done"]').length;
  $("status").textContent = done + " classified.";
}

document.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("files").addEventListener("change", (e) => { handle(e.target.files); e.target.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => handle(e.dataTransfer.files));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("gender-token", state.token);
    $("token-form").hidden = true;
    const again = state.waiting.splice(0);
    loadModel();
    Promise.all(again.map(([file, fig]) => classify(file, fig)));
  });
  loadModel();
});
