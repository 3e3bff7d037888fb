// photorad phone page: pick a photo, check/drag the detected corners, analyze, show the result
// (score, or why there is none, and the lesion outline on the restored image); the clinician can
// drag a box around the lesion and score that region (same photo, same corners).
// No framework, no build step, no network access beyond this server.
"use strict";

(function () {
  const KEY_STORE = "photorad.apiKey";
  const NAMES = ["TL", "TR", "BR", "BL"];
  const $ = (id) => document.getElementById(id);

  const state = {
    file: null,          // the File chosen by the user (sent as-is, never stored)
    img: null,           // HTMLImageElement of the photo (for drawing only)
    photoW: 0,           // photo size as the server decoded it (EXIF orientation applied)
    photoH: 0,
    corners: null,       // [[x, y] x4] TL, TR, BR, BL in photo pixels
    detected: null,      // corners as detected (for "Reset corners")
    drag: -1,            // index of the handle being dragged
    busy: false,
    result: null,        // the last /v1/analyze response shown (null: none yet)
    usedCorners: null,   // quad.corners of that analysis (sent again with a lesion box)
    restW: 0,            // restored-image size in pixels (= rectified size)
    restH: 0,
    userBox: null,       // [x, y, w, h] restored-image px: the box the clinician dragged
    boxDrag: null,       // {x0, y0, id} while a box is being dragged
  };

  // ----- API key: sessionStorage only (gone when the tab closes) ---------------------------
  const keyInput = $("apikey");
  keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
  if (!keyInput.value) $("settings").open = true;
  keyInput.addEventListener("input", () => sessionStorage.setItem(KEY_STORE, keyInput.value.trim()));

  function headers() {
    const h = { "X-Request-ID": newRequestId() };
    const k = keyInput.value.trim();
    if (k) h["X-API-Key"] = k;
    return h;
  }

  function newRequestId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  // ----- messages ------------------------------------------------------------------------
  function showError(msg) {
    const el = $("error");
    el.textContent = msg;
    el.hidden = !msg;
  }

  function setBusy(on, text) {
    state.busy = on;
    $("busy").hidden = !on;
    $("busy").textContent = text || "Working…";
    $("analyze").disabled = on || !state.corners;
    updateBoxButtons();
  }

  async function postPhoto(path, extra) {
    const form = new FormData();
    form.append("photo", state.file, "photo");  // a neutral name: the real file name stays here
    if (extra) for (const [k, v] of Object.entries(extra)) form.append(k, v);
    let resp;
    try {
      resp = await fetch(path, { method: "POST", body: form, headers: headers() });
    } catch (e) {
      throw new Error("Cannot reach the server (" + e.message + ").");
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = body && body.error ? body.error : { message: resp.statusText };
      let msg = err.message || ("HTTP " + resp.status);
      if (resp.status === 401) {
        msg = "The API key is missing or wrong. Enter it under “API key”.";
        $("settings").open = true;
      } else if (resp.status === 503) {
        const ra = resp.headers.get("Retry-After");
        msg = "The server is busy" + (ra ? "; try again in " + ra + " s." : ".");
      } else if (resp.status === 413) {
        msg = "The photo is too large: " + msg;
      }
      const ex = new Error(msg);
      ex.status = resp.status;
      ex.kind = err.type;
      throw ex;
    }
    return body;
  }

  // ----- photo selection -----------------------------------------------------------------
  function onFile(ev) {
    const f = ev.target.files && ev.target.files[0];
    ev.target.value = "";  // allow picking the same file again
    if (!f) return;
    state.file = f;
    state.corners = null;
    state.detected = null;
    clearResult();
    showError("");
    const url = URL.createObjectURL(f);
    const img = new Image();
    img.onload = () => {
      state.img = img;
      if (!state.photoW) { state.photoW = img.naturalWidth; state.photoH = img.naturalHeight; }
      draw();
    };
    img.onerror = () => {
      state.img = null;
      $("detect-status").textContent =
        "This browser cannot display the photo, but the server can still analyze it.";
    };
    state.photoW = 0;
    state.photoH = 0;
    img.src = url;
    $("corners-card").hidden = false;
    detect();
  }
  $("camera").addEventListener("change", onFile);
  $("file").addEventListener("change", onFile);

  function insetCorners(w, h) {
    const dx = w * 0.1, dy = h * 0.1;
    return [[dx, dy], [w - dx, dy], [w - dx, h - dy], [dx, h - dy]];
  }

  async function detect() {
    setBusy(true, "Finding the image in the photo…");
    $("detect-status").textContent = "";
    try {
      const r = await postPhoto("/v1/rectify");
      state.photoW = r.photo.width;
      state.photoH = r.photo.height;
      state.corners = r.quad.corners.map((p) => [p[0], p[1]]);
      state.detected = state.corners.map((p) => p.slice());
      $("detect-status").textContent = "Corners found (confidence " +
        Math.round(r.quad.score * 100) + " %). Drag them if they are off." +
        qualitySummary(r.quality, r.quality_warnings);
    } catch (e) {
      if (e.status === 422 && state.file) {
        const w = state.photoW || (state.img && state.img.naturalWidth) || 1000;
        const h = state.photoH || (state.img && state.img.naturalHeight) || 750;
        state.photoW = w;
        state.photoH = h;
        state.corners = insetCorners(w, h);
        state.detected = state.corners.map((p) => p.slice());
        $("detect-status").textContent =
          "Could not find the image automatically (" + e.message +
          "). Drag the four handles onto its corners.";
      } else {
        showError(e.message);
      }
    } finally {
      setBusy(false);
      draw();
    }
  }

  function qualitySummary(q, warnings) {
    if (!q || !q.status || q.status === "pass") return "";
    const first = warnings && warnings.length ? " — " + warnings[0].message : "";
    return " Capture quality: " + q.status + first + ".";
  }

  // ----- canvas: photo + draggable corners ------------------------------------------------
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");

  function scale() {  // photo px -> canvas px
    return canvas.width / (state.photoW || 1);
  }

  function draw() {
    const w = state.photoW || (state.img && state.img.naturalWidth) || 0;
    const h = state.photoH || (state.img && state.img.naturalHeight) || 0;
    if (!w || !h) return;
    const cssW = canvas.clientWidth || 600;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(Math.min(cssW * dpr, w));
    canvas.height = Math.round(canvas.width * h / w);
    const s = canvas.width / w;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (state.img) ctx.drawImage(state.img, 0, 0, canvas.width, canvas.height);
    if (!state.corners) return;
    const pts = state.corners.map(([x, y]) => [(x + 0.5) * s, (y + 0.5) * s]);
    const lw = Math.max(2, canvas.width / 300);
    ctx.lineWidth = lw;
    ctx.strokeStyle = "#00e0ff";
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
    const r = handleRadius();
    ctx.font = Math.round(r * 0.9) + "px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    pts.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fillStyle = i === state.drag ? "rgba(255,200,0,0.55)" : "rgba(0,224,255,0.35)";
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = "#fff";
      ctx.fillText(NAMES[i], x, y);
    });
  }

  function handleRadius() {  // ~22 CSS px: big enough for a fingertip
    const cssToCanvas = canvas.width / (canvas.clientWidth || canvas.width);
    return 22 * cssToCanvas;
  }

  function eventPoint(ev) {  // pointer event -> canvas px
    const rect = canvas.getBoundingClientRect();
    return [(ev.clientX - rect.left) * canvas.width / rect.width,
            (ev.clientY - rect.top) * canvas.height / rect.height];
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (!state.corners || state.busy) return;
    const [px, py] = eventPoint(ev);
    const s = scale();
    let best = -1, bestD = Infinity;
    state.corners.forEach(([x, y], i) => {
      const d = Math.hypot((x + 0.5) * s - px, (y + 0.5) * s - py);
      if (d < bestD) { bestD = d; best = i; }
    });
    if (bestD <= handleRadius() * 2) {
      state.drag = best;
      canvas.setPointerCapture(ev.pointerId);
      ev.preventDefault();
      draw();
    }
  });

  canvas.addEventListener("pointermove", (ev) => {
    if (state.drag < 0) return;
    const [px, py] = eventPoint(ev);
    const s = scale();
    const x = Math.min(Math.max(px / s - 0.5, -0.5), state.photoW - 0.5);
    const y = Math.min(Math.max(py / s - 0.5, -0.5), state.photoH - 0.5);
    state.corners[state.drag] = [x, y];
    ev.preventDefault();
    draw();
  });

  function endDrag(ev) {
    if (state.drag < 0) return;
    state.drag = -1;
    if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
    draw();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  window.addEventListener("resize", draw);

  $("reset").addEventListener("click", () => {
    if (state.detected) state.corners = state.detected.map((p) => p.slice());
    draw();
  });

  // ----- analyze ---------------------------------------------------------------------------
  $("analyze").addEventListener("click", () => {
    if (!state.file || !state.corners) return;
    setUserBox(null);
    runAnalysis(state.corners, null);
  });

  // "Score this region": the SAME photo (kept in memory), the corners the last analysis used,
  // and the clinician's box in restored-image pixels.
  $("rescore").addEventListener("click", () => {
    if (!state.file || !state.usedCorners || !state.userBox) return;
    runAnalysis(state.usedCorners, serverBox(state.userBox));
  });

  async function runAnalysis(corners, lesionBox) {
    showError("");
    clearScore();  // never leave an earlier score on screen while (or if) this one fails
    setBusy(true, lesionBox ? "Scoring the region you marked…"
                            : "Rectifying, restoring and scoring…");
    try {
      const extra = { corners: JSON.stringify(corners) };
      if (lesionBox) extra.lesion_box = JSON.stringify(lesionBox);
      const r = await postPhoto("/v1/analyze", extra);
      showResult(r, !lesionBox);
    } catch (e) {
      showError(e.message);
    } finally {
      setBusy(false);
    }
  }

  function clearResult() {
    state.result = null;
    state.usedCorners = null;
    setUserBox(null);
    clearScore();
    $("result").hidden = true;
  }

  function clearScore() {
    $("score").textContent = "–";
    $("score-box").hidden = true;
    $("refusal").hidden = true;
  }

  function hasScore(r) {
    return r.score !== null && r.score !== undefined && Number.isFinite(Number(r.score));
  }

  function showResult(r, scroll) {
    state.result = r;
    state.usedCorners = r.quad.corners.map((p) => [p[0], p[1]]);
    state.restW = r.images.restored.width;
    state.restH = r.images.restored.height;
    setUserBox(null);
    renderScore(r);
    $("rectified").src = "data:image/png;base64," + r.images.rectified.png_base64;
    $("restored").src = "data:image/png;base64," + r.images.restored.png_base64;
    renderLesion(r);
    renderQuality(r.quality, r.quality_warnings);
    const m = r.models || {};
    let meta = "Request " + r.request_id +
      " · restorer " + ((m.restorer || {}).name || "?") +
      " · classifier " + ((m.classifier || {}).name || "?");
    if (m.localizer) meta += " · lesion localizer " + (m.localizer.name || "?");
    $("meta").textContent = meta + " · " + Math.round((r.timings_ms || {}).total || 0) + " ms";
    $("result").hidden = false;
    updateBoxButtons();
    if (scroll) $("result").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // Score, or (score null) the server's reason and advice in plain words; never both.
  function renderScore(r) {
    const ok = hasScore(r);
    $("score-box").hidden = !ok;
    $("score").textContent = ok ? Number(r.score).toFixed(3) : "–";
    $("score-label").textContent = r.roi === "whole image"
      ? "Classifier score for the whole image (probability of malignancy)"
      : "Classifier score for the lesion region (probability of malignancy)";
    $("refusal").hidden = ok;
    if (!ok) {
      const ref = r.refusal || {};
      $("refusal-reason").textContent = ref.reason || "No score was returned.";
      $("refusal-advice").textContent = plainAdvice(ref.advice ||
        "mark the lesion: drag a box around it on the image and score again");
    }
  }

  // The server's advice also serves the command line; drop "(or pass --option …)" asides.
  function plainAdvice(text) {
    const t = String(text).replace(/\s*\([^()]*--[^()]*\)/g, "").trim();
    return t ? t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".") : "";
  }

  // ----- lesion overlay: outline + box over the restored image, in its own pixels ------------
  const overlay = $("lesion-overlay");
  const wrap = $("restored-wrap");

  function setRect(el, box) {
    const [x, y, w, h] = box || [0, 0, 0, 0];
    el.setAttribute("x", x);
    el.setAttribute("y", y);
    el.setAttribute("width", w);
    el.setAttribute("height", h);
  }

  function renderLesion(r) {
    overlay.setAttribute("viewBox", "0 0 " + state.restW + " " + state.restH);
    const les = r.lesion;
    const label = $("lesion-label");
    const src = les ? String(les.source || "auto") : "none";
    overlay.setAttribute("data-lesion-source", src);
    label.setAttribute("data-lesion-source", src);
    overlay.setAttribute("class", "lesion-overlay source-" + src);
    label.className = "lesion-label source-" + src;
    if (les) {
      // outline points are pixel centres; the box covers whole pixels
      const pts = (les.outline || []).map((p) => (p[0] + 0.5) + "," + (p[1] + 0.5));
      $("lesion-outline").setAttribute("points", pts.join(" "));
      setRect($("lesion-box"), les.box);
      label.textContent = src === "user" ? "lesion (marked by you)"
        : "lesion (found automatically, confidence " +
          Number(les.confidence).toFixed(2) + ")";
    } else {
      $("lesion-outline").setAttribute("points", "");
      setRect($("lesion-box"), null);
      label.textContent = r.roi === "whole image"
        ? "whole image scored (no lesion localizer)"
        : "no lesion found: drag a box around it";
    }
  }

  function setUserBox(box) {
    state.userBox = box;
    setRect($("user-box"), box);
    if (!box) $("box-status").textContent = "";
    updateBoxButtons();
  }

  function updateBoxButtons() {
    const ready = !!(state.result && state.file && state.usedCorners);
    $("rescore").disabled = state.busy || !ready || !state.userBox;
    $("clear-box").disabled = state.busy || !state.userBox;
  }

  // [x, y, w, h] restored px (floats) -> integers inside the image, as the server takes them
  function serverBox(b) {
    const x0 = Math.max(0, Math.min(state.restW - 1, Math.round(b[0])));
    const y0 = Math.max(0, Math.min(state.restH - 1, Math.round(b[1])));
    const x1 = Math.max(x0 + 1, Math.min(state.restW, Math.round(b[0] + b[2])));
    const y1 = Math.max(y0 + 1, Math.min(state.restH, Math.round(b[1] + b[3])));
    return [x0, y0, x1 - x0, y1 - y0];
  }

  function imagePoint(ev) {  // pointer event -> restored-image px, clamped to the image
    const rect = $("restored").getBoundingClientRect();
    const x = (ev.clientX - rect.left) * state.restW / (rect.width || 1);
    const y = (ev.clientY - rect.top) * state.restH / (rect.height || 1);
    return [Math.min(Math.max(x, 0), state.restW), Math.min(Math.max(y, 0), state.restH)];
  }

  function boxFrom(x0, y0, x1, y1) {
    return [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
  }

  wrap.addEventListener("pointerdown", (ev) => {
    if (!state.result || state.busy || !state.restW || state.boxDrag) return;
    if (ev.pointerType === "mouse" && ev.button !== 0) return;
    const [x, y] = imagePoint(ev);
    state.boxDrag = { x0: x, y0: y, id: ev.pointerId };
    wrap.setPointerCapture(ev.pointerId);
    ev.preventDefault();
    setUserBox([x, y, 0, 0]);
  });

  wrap.addEventListener("pointermove", (ev) => {
    const d = state.boxDrag;
    if (!d || ev.pointerId !== d.id) return;
    const [x, y] = imagePoint(ev);
    setUserBox(boxFrom(d.x0, d.y0, x, y));
    ev.preventDefault();
  });

  function endBox(ev) {
    const d = state.boxDrag;
    if (!d || ev.pointerId !== d.id) return;
    state.boxDrag = null;
    if (wrap.hasPointerCapture(ev.pointerId)) wrap.releasePointerCapture(ev.pointerId);
    if (ev.type === "pointercancel") { setUserBox(null); return; }
    const [x, y] = imagePoint(ev);
    const b = boxFrom(d.x0, d.y0, x, y);
    const minSide = Math.max(3, 0.01 * Math.max(state.restW, state.restH));
    if (b[2] < minSide || b[3] < minSide) {
      setUserBox(null);
      $("box-status").textContent = "That box is too small: drag across the whole lesion.";
      return;
    }
    setUserBox(b);
    const s = serverBox(b);
    $("box-status").textContent = "Box " + s[2] + " × " + s[3] + " px at (" + s[0] + ", " +
      s[1] + "). Press “Score this region” to score it.";
  }
  wrap.addEventListener("pointerup", endBox);
  wrap.addEventListener("pointercancel", endBox);

  $("clear-box").addEventListener("click", () => setUserBox(null));

  // Capture quality: overall status + the server's human-readable warnings (checks not passed).
  function renderQuality(q, warnings) {
    const box = $("quality");
    box.textContent = "";
    if (!q) return;
    const head = document.createElement("div");
    head.textContent = "Capture quality: ";
    const badge = document.createElement("span");
    const st = String(q.status || "unknown");
    badge.className = "badge " + st;
    badge.textContent = st;
    head.appendChild(badge);
    box.appendChild(head);
    if (warnings && warnings.length) {
      const ul = document.createElement("ul");
      warnings.forEach((w) => {
        const li = document.createElement("li");
        li.className = w.status;
        let text = w.check + " (" + w.status;
        if (w.value !== null && w.value !== undefined) {
          text += ": " + Number(w.value).toPrecision(3) + (w.unit ? " " + w.unit : "");
        }
        li.textContent = text + ") — " + w.message;
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }
  }
})();
