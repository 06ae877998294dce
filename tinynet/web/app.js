// tinynet digit reader: draw or upload, POST the image to /api/predict, show the answer.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const resultBox = document.getElementById("result");
const statusLine = document.getElementById("status");
const answer = document.getElementById("answer");
const digitsOut = document.getElementById("digits");
const confidenceOut = document.getElementById("confidence");
const unsureLine = document.getElementById("unsure");
const details = document.getElementById("details");
const singleBox = document.getElementById("single");
const drop = document.getElementById("drop");
const fileInput = document.getElementById("file");
const previewWrap = document.getElementById("preview-wrap");
const preview = document.getElementById("preview");
const boxesLayer = document.getElementById("boxes");

let latest = 0; // number of the newest request: older answers arriving late are dropped
let lastSource = null; // {blob, name, kind} of the last image read, to re-read on option change
let drawing = null; // {id, x, y} of the pointer drawing now
let inked = false;

// ---------------------------------------------------------------- the canvas
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - r.left) * pad.width) / r.width,
    y: ((event.clientY - r.top) * pad.height) / r.height,
  };
}

function strokeWidth(event) {
  // A pen's pressure thins or thickens the line; mouse and touch draw at the default.
  const base = pad.width / 14;
  if (event.pointerType === "pen" && event.pressure > 0) {
    return base * (0.5 + event.pressure);
  }
  return base;
}

function segment(from, to, width) {
  ctx.strokeStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (drawing) return; // a second finger does not start a second line
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  const p = point(event);
  drawing = { id: event.pointerId, ...p };
  segment(p, p, strokeWidth(event)); // a tap leaves a dot
  inked = true;
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing || event.pointerId !== drawing.id) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const p = point(e);
    segment(drawing, p, strokeWidth(e));
    drawing.x = p.x;
    drawing.y = p.y;
  }
});

function endStroke(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  drawing = null;
  pad.toBlob((blob) => {
    if (blob) read({ blob, name: "drawing.png", kind: "drawing" });
  }, "image/png");
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  latest += 1; // forget any reading still on its way
  lastSource = null;
  showIdle("Draw a digit or upload an image.");
});

singleBox.addEventListener("change", () => {
  if (lastSource) read(lastSource);
});

// ------------------------------------------------------------ upload and drop
function takeFile(file) {
  if (!file) return;
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  previewWrap.hidden = false;
  boxesLayer.replaceChildren();
  read({ blob: file, name: file.name || "upload", kind: "upload" });
}

fileInput.addEventListener("change", () => {
  takeFile(fileInput.files[0]);
  fileInput.value = ""; // choosing the same file again reads it again
});
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  takeFile(event.dataTransfer.files[0]);
});
// A file dropped anywhere else must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

// ------------------------------------------------------------------- reading
async function read(source) {
  lastSource = source;
  const n = ++latest;
  resultBox.dataset.state = "busy";
  statusLine.textContent = "Reading…";
  const query = new URLSearchParams({ inputs: "1", file: source.name });
  if (singleBox.checked) query.set("single", "1");
  let status = 0;
  let body = null;
  try {
    const response = await fetch("api/predict?" + query, {
      method: "POST",
      body: source.blob,
      headers: { "Content-Type": source.blob.type || "application/octet-stream" },
    });
    status = response.status;
    body = await response.json().catch(() => null);
  } catch (err) {
    body = { error: "could not reach the tinynet server (is it still running?)" };
  }
  if (n !== latest) return; // a newer stroke or upload has been sent since
  if (status === 200 && body && body.error === null) {
    showReading(body, source);
  } else {
    const message = (body && body.error) || `the server answered ${status}`;
    showError(message, status);
  }
}

function showIdle(message) {
  resultBox.dataset.state = "idle";
  statusLine.textContent = message;
  answer.hidden = true;
  unsureLine.hidden = true;
  details.replaceChildren();
}

function showError(message, status) {
  resultBox.dataset.state = "error";
  const hint = status === 422 ? " Draw or upload a digit." : "";
  statusLine.textContent = message + hint;
  answer.hidden = true;
  unsureLine.hidden = true;
  details.replaceChildren();
  boxesLayer.replaceChildren();
}

function percent(p) {
  return (100 * p).toFixed(1) + " %";
}

function showReading(r, source) {
  resultBox.dataset.state = "done";
  statusLine.textContent = `${source.kind === "drawing" ? "Drawing" : source.name}: ` +
    `${r.digits.length} digit${r.digits.length === 1 ? "" : "s"} found.`;
  answer.hidden = false;
  digitsOut.textContent = r.digits;
  confidenceOut.textContent = r.confidence.map(percent).join(" · ");
  showUnsure(r);
  details.replaceChildren(...r.probabilities.map((probs, i) => digitCard(r, probs, i)));
  // Boxes mark digits on the uploaded photo only; a drawing's answer removes them.
  if (source.kind === "upload") drawBoxes(r.boxes || []);
  else boxesLayer.replaceChildren();
}

// A digit read below the server's threshold (r.sure false) is flagged "not sure",
// with the runner-up: in one line under the answer and on the digit's card.
function runnerUpText(r, i) {
  const [digit, p] = r.runner_up[i];
  return `maybe ${digit} (${percent(p)})`;
}

function showUnsure(r) {
  const unsure = r.sure.flatMap((sure, i) => (sure ? [] : [i]));
  unsureLine.hidden = unsure.length === 0;
  unsureLine.textContent = unsure.map((i) => {
    const which = r.digits.length > 1 ? ` about digit ${i + 1} (${r.digits[i]})` : "";
    return `Not sure${which}: ${runnerUpText(r, i)}.`;
  }).join(" ");
}

function digitCard(r, probs, i) {
  const card = document.createElement("div");
  card.className = "digit-card" + (r.sure[i] ? "" : " not-sure");
  const seen = document.createElement("figure");
  seen.className = "seen";
  const img = document.createElement("img");
  img.src = r.inputs[i];
  img.alt = `28x28 input the network saw for digit ${i + 1}`;
  const caption = document.createElement("figcaption");
  caption.textContent = r.digits.length > 1 ? `digit ${i + 1}: 28x28 input` : "28x28 input";
  seen.append(img, caption);

  const bars = document.createElement("div");
  bars.className = "bars";
  bars.setAttribute("role", "img");
  const best = Number(r.digits[i]);
  bars.setAttribute(
    "aria-label",
    "probabilities: " + probs.map((p, d) => `${d}: ${percent(p)}`).join(", "),
  );
  probs.forEach((p, d) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (d === best ? " top" : "");
    bar.dataset.digit = d;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.height = `${Math.max(0, Math.min(1, p)) * 100}%`;
    track.append(fill);
    const label = document.createElement("span");
    label.textContent = d;
    const value = document.createElement("span");
    value.className = "p";
    value.textContent = p >= 0.01 ? Math.round(p * 100) : "";
    bar.append(track, label, value);
    bars.append(bar);
  });
  card.append(seen, bars);
  if (!r.sure[i]) {
    const badge = document.createElement("p");
    badge.className = "unsure-badge";
    badge.textContent = `not sure: ${runnerUpText(r, i)}`;
    card.append(badge);
  }
  return card;
}

function drawBoxes(boxes) {
  const place = () => {
    const sx = preview.clientWidth / preview.naturalWidth;
    const sy = preview.clientHeight / preview.naturalHeight;
    boxesLayer.replaceChildren(...boxes.map(([x, y, w, h]) => {
      const b = document.createElement("div");
      Object.assign(b.style, {
        left: `${x * sx}px`, top: `${y * sy}px`, width: `${w * sx}px`, height: `${h * sy}px`,
      });
      return b;
    }));
  };
  if (preview.complete && preview.naturalWidth) place();
  else preview.addEventListener("load", place, { once: true });
}

// -------------------------------------------------------------------- start
clearPad();
document.querySelector("footer code").textContent =
  `curl --data-binary @digit.png ${location.origin}/api/predict`;
fetch("api/info")
  .then((r) => r.json())
  .then((info) => {
    document.getElementById("model-name").textContent = `model: ${info.model}`;
  })
  .catch(() => {});
