// trainlab serve: the page at /. Plain JavaScript, no build step; every server call goes through api().
"use strict";

(() => {
  const TOKEN_KEY = "trainlab-token"; // sessionStorage: the token lives as long as the tab
  const TOP_K = 3;
  const PENDING_RETRY_MS = 2000; // the server computes per-class figures and samples at start-up
  const PENDING_TRIES = 15;
  const PEN_FRACTION = 1 / 12; // the pen's width as a share of the canvas side
  const REPORT_TITLES = { learning_curves: "Learning curves", confusion_matrix: "Confusion matrix" };

  const $ = (id) => document.getElementById(id);
  const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;
  const integer = new Intl.NumberFormat("en-US");

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const state = {
    token: null,
    predictTicket: 0, // only the newest request's answer is shown
    givenUrl: null, // object URL of the picture on show, revoked when replaced
    retryAfterToken: null, // {blob, truth} of a prediction refused with 401: sent again once a token is given
    samplesShown: false,
    reportsShown: false,
    drawn: false,
  };

  // ---- messages and the token --------------------------------------------------------------------

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function readToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (match) {
      const token = decodeURIComponent(match[1]);
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      // the token leaves the address bar (and the history) once it is kept
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    state.token = sessionStorage.getItem(TOKEN_KEY);
  }

  function askForToken() {
    const form = $("token-form");
    if (form.hidden) {
      form.hidden = false;
      $("token-input").value = "";
      $("token-input").focus();
    }
  }

  function setUpTokenForm() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token-form").hidden = true;
      clearError();
      loadAll().then(() => {
        // the picture that met the 401 goes again, unless the token was refused too
        const retry = state.retryAfterToken;
        if (retry && $("token-form").hidden) predict(retry.blob, retry.truth);
      });
    });
  }

  // ---- the API -----------------------------------------------------------------------------------

  async function api(path, { method = "GET", body, contentType, as = "json" } = {}) {
    const headers = {};
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (contentType) headers["Content-Type"] = contentType;
    let response;
    try {
      response = await fetch(path, { method, body, headers });
    } catch (exc) {
      throw new ApiError(0, `The server cannot be reached (${exc.message}).`);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`.trim();
      try {
        const values = await response.json();
        if (values && typeof values.error === "string") message = values.error;
      } catch (exc) {
        // not JSON (a proxy's page, say): the status line says enough
      }
      if (response.status === 401) askForToken();
      throw new ApiError(response.status, message);
    }
    return as === "blob" ? response.blob() : response.json();
  }

  function report(exc) {
    showError(exc instanceof ApiError ? exc.message : `Something went wrong: ${exc.message || exc}`);
  }

  // ---- the model card ----------------------------------------------------------------------------

  function fact(list, term, value, title, className) {
    if (value === null || value === undefined || value === "") return;
    const row = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    if (title) dd.title = title;
    if (className) dd.className = className;
    row.append(dt, dd);
    list.append(row);
  }

  function describeInput(input) {
    if (!input || !input.height || !input.width) return null;
    const kind = { 1: "gray", 3: "color" }[input.channels] || `${input.channels} channels`;
    return `${input.width} × ${input.height} ${kind}`;
  }

  function renderModel(info) {
    const trained = [info.model, info.dataset && `on ${info.dataset}`].filter(Boolean).join(" ");
    const scored = typeof info.test_accuracy === "number" ? `${percent(info.test_accuracy, 2)} test accuracy` : "";
    $("subtitle").textContent = [info.name, trained, scored].filter(Boolean).join(" · ");
    if (info.name) document.title = `${info.name} · trainlab`;

    const facts = $("model-facts");
    facts.replaceChildren();
    fact(facts, "Name", info.name);
    fact(facts, "Model", info.model);
    fact(facts, "Data set", info.dataset);
    if (typeof info.test_accuracy === "number") fact(facts, "Test accuracy", percent(info.test_accuracy, 2));
    if (typeof info.epochs === "number") fact(facts, "Epochs", integer.format(info.epochs));
    if (typeof info.parameters === "number") fact(facts, "Parameters", integer.format(info.parameters));
    fact(facts, "Input", describeInput(info.input));
    fact(facts, "Checkpoint", info.checkpoint);
    if (typeof info.sha256 === "string" && info.sha256) {
      fact(facts, "SHA-256", `${info.sha256.slice(0, 12)}…`, info.sha256, "mono");
    }

    const classes = Array.isArray(info.classes) ? info.classes : [];
    $("classes").replaceChildren(
      ...classes.map((name) => {
        const item = document.createElement("li");
        item.textContent = name;
        return item;
      }),
    );
    $("classes-block").hidden = classes.length === 0;

    renderPerClass(info.per_class);
    $("per-class-pending").hidden = !(info.per_class == null && info.per_class_pending);
    if (!state.reportsShown) {
      state.reportsShown = true;
      renderReports(info.reports || {}); // not awaited: the pictures come when they come
      renderReview(info.reports || {});
    }
    $("model-card").hidden = false;
  }

  function renderPerClass(rows) {
    const block = $("per-class-block");
    if (!Array.isArray(rows) || rows.length === 0) {
      block.hidden = true;
      return;
    }
    const body = $("per-class").tBodies[0];
    body.replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr");
        const name = document.createElement("th");
        name.scope = "row";
        name.textContent = row.class;
        tr.append(name);
        for (const value of [percent(row.recall), percent(row.precision), integer.format(row.support)]) {
          const td = document.createElement("td");
          td.textContent = value;
          tr.append(td);
        }
        return tr;
      }),
    );
    block.hidden = false;
  }

  async function renderReports(reports) {
    // fetched with the token (an <img src> cannot send one); a picture that fails is left out
    const box = $("reports");
    const keys = Object.keys(reports).filter((key) => key !== "review" && typeof reports[key] === "string");
    const figures = await Promise.all(
      keys.map(async (key) => {
        try {
          const blob = await api(reports[key], { as: "blob" });
          const figure = document.createElement("figure");
          const img = document.createElement("img");
          const caption = document.createElement("figcaption");
          const title = REPORT_TITLES[key] || key.replace(/_/g, " ");
          img.src = URL.createObjectURL(blob);
          img.alt = title;
          img.loading = "lazy";
          caption.textContent = title;
          figure.append(img, caption);
          return figure;
        } catch (exc) {
          return null;
        }
      }),
    );
    box.replaceChildren(...figures.filter(Boolean));
  }

  async function renderReview(reports) {
    // `trainlab review RUN` wrote a review: its first suspects (plain text cells) and its grid picture
    if (typeof reports.review !== "string") return;
    let review;
    try {
      review = await api("/v1/model/review");
    } catch (exc) {
      return; // no review served (it changed, or it is not a regular file in the run directory)
    }
    const rows = Array.isArray(review.suspects) ? review.suspects : [];
    $("review").tBodies[0].replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr");
        const confidence = Number(row.confidence);
        const cells = [row.file, row.split, row.given, row.suggested || "keep?"];
        cells.push(Number.isFinite(confidence) ? percent(confidence, 0) : "", row.reason);
        for (const value of cells) {
          const td = document.createElement("td");
          td.textContent = value;
          tr.append(td);
        }
        return tr;
      }),
    );
    const total = integer.format(review.total || 0);
    $("review-summary").textContent =
      `${total} suspect(s) in review/review.csv; the first ${rows.length} below. Edit the CSV, then ` +
      "retrain with `trainlab train ... --relabel review.csv`.";
    $("review-block").hidden = false;
    try {
      $("review-image").src = URL.createObjectURL(await api(reports.review, { as: "blob" }));
      $("review-figure").hidden = false;
    } catch (exc) {
      // the table says it all without the picture
    }
  }

  // ---- samples -----------------------------------------------------------------------------------

  async function loadSamples() {
    const { samples } = await api("/v1/samples");
    if (!Array.isArray(samples) || samples.length === 0) return false;
    const loaded = await Promise.all(
      samples.map(async (sample) => {
        try {
          return { ...sample, blob: await api(sample.url, { as: "blob" }) };
        } catch (exc) {
          return null;
        }
      }),
    );
    const usable = loaded.filter(Boolean);
    if (usable.length === 0) return false;
    $("samples").replaceChildren(...usable.map(sampleButton));
    $("samples-card").hidden = false;
    state.samplesShown = true;
    return true;
  }

  function sampleButton(sample) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    const img = document.createElement("img");
    const caption = document.createElement("span");
    button.type = "button";
    button.className = "sample";
    button.title = sample.label;
    button.dataset.index = sample.index;
    button.setAttribute("aria-label", `Test image ${sample.index}, a ${sample.label}`);
    img.src = URL.createObjectURL(sample.blob);
    img.alt = "";
    caption.textContent = sample.label;
    button.append(img, caption);
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".sample.current")) other.classList.remove("current");
      button.classList.add("current");
      predict(sample.blob, sample.label, true);
    });
    item.append(button);
    return item;
  }

  // ---- predictions -------------------------------------------------------------------------------

  async function predict(blob, truth = null, reveal = false) {
    const ticket = ++state.predictTicket;
    state.retryAfterToken = null;
    clearError();
    const card = $("result-card");
    card.setAttribute("aria-busy", "true");
    $("result-empty").hidden = true;
    $("result-busy").hidden = !$("result").hidden; // the last answer stays, dimmed, until the next one
    try {
      const answer = await api(`/v1/predict?top_k=${TOP_K}&include_input=true`, {
        method: "POST",
        body: blob,
        contentType: blob.type || "application/octet-stream",
      });
      if (ticket !== state.predictTicket) return;
      const [prediction] = answer.predictions || [];
      if (!prediction) throw new ApiError(0, "The server answered without a prediction.");
      showPrediction(prediction, blob, truth);
      if (reveal) revealResult();
    } catch (exc) {
      if (ticket !== state.predictTicket) return;
      if (exc.status === 401) state.retryAfterToken = { blob, truth };
      report(exc);
      if ($("result").hidden) $("result-empty").hidden = false;
    } finally {
      if (ticket === state.predictTicket) {
        card.removeAttribute("aria-busy");
        $("result-busy").hidden = true;
      }
    }
  }

  function showPrediction(prediction, blob, truth) {
    if (state.givenUrl) URL.revokeObjectURL(state.givenUrl);
    state.givenUrl = URL.createObjectURL(blob);
    const given = $("given-input");
    given.classList.remove("small");
    given.onload = () => given.classList.toggle("small", given.naturalWidth < given.clientWidth);
    given.src = state.givenUrl;

    const modelInput = $("model-input");
    modelInput.hidden = !prediction.model_input;
    modelInput.closest("figure").hidden = !prediction.model_input;
    if (prediction.model_input) {
      modelInput.src = prediction.model_input;
      modelInput.onload = () => {
        const { naturalWidth: width, naturalHeight: height } = modelInput;
        $("model-input-caption").textContent = `The model received (${width}\u00a0×\u00a0${height})`;
      };
    }

    $("prediction-label").textContent = prediction.label;
    $("prediction-percent").textContent =
      typeof prediction.probability === "number" ? percent(prediction.probability) : "";

    const truthLine = $("prediction-truth");
    truthLine.hidden = !truth;
    if (truth) {
      const right = truth === prediction.label;
      truthLine.textContent = right ? `Right: this test image is a ${truth}.` : `Wrong: this test image is a ${truth}.`;
      truthLine.className = `truth ${right ? "right" : "wrong"}`;
    }

    // the Predictor decides (unlike_training); the page says it in trainlab predict's words
    const unlike = $("unlike-training");
    unlike.hidden = prediction.unlike_training !== true;
    unlike.textContent = "this picture looks unlike the training images; the answer may be meaningless";

    const top = Array.isArray(prediction.top_k) ? prediction.top_k : [];
    $("top-k").replaceChildren(...top.map(bar));

    const style = $("input-style");
    style.hidden = !prediction.input_style;
    if (prediction.input_style) {
      const reason = prediction.input_style_reason ? `: ${prediction.input_style_reason}` : "";
      style.textContent = `Input style ${prediction.input_style}${reason}`;
    }
    $("result").hidden = false;
  }

  function bar({ label, probability }) {
    const item = document.createElement("li");
    const text = document.createElement("div");
    const name = document.createElement("span");
    const value = document.createElement("span");
    const track = document.createElement("div");
    const fill = document.createElement("div");
    text.className = "bar-text";
    name.className = "bar-label";
    value.className = "bar-value";
    track.className = "bar-track";
    fill.className = "bar-fill";
    name.textContent = label;
    value.textContent = percent(probability);
    fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
    track.setAttribute("aria-hidden", "true");
    text.append(name, " ", value);
    track.append(fill);
    item.append(text, track);
    return item;
  }

  function revealResult() {
    // one column: the answer is below the inputs, so bring it into view
    if (!window.matchMedia("(max-width: 859px)").matches) return;
    const card = $("result-card");
    const box = card.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) card.scrollIntoView({ block: "start" });
  }

  // ---- files: drop, choose, paste ----------------------------------------------------------------

  function imageFile(list) {
    for (const file of list || []) if (file && file.type.startsWith("image/")) return file;
    return null;
  }

  function setUpFiles() {
    const zone = $("drop-zone");
    const input = $("file-input");
    input.addEventListener("change", () => {
      const [file] = input.files;
      if (file) predict(file, null, true);
      input.value = ""; // choosing the same file again predicts again
    });

    let depth = 0; // dragenter/dragleave fire for every child the drag crosses
    window.addEventListener("dragenter", (event) => {
      event.preventDefault();
      depth += 1;
      zone.classList.add("dragging");
    });
    window.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("dragging");
    });
    // a drop anywhere on the page is taken, rather than the browser opening the file
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => {
      event.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      const files = event.dataTransfer ? event.dataTransfer.files : [];
      if (files.length === 0) return;
      predict(imageFile(files) || files[0], null, true); // not an image: the server says why
    });

    document.addEventListener("paste", (event) => {
      const data = event.clipboardData;
      if (!data) return;
      const fromItems = Array.from(data.items || [])
        .filter((item) => item.kind === "file" && item.type.startsWith("image/"))
        .map((item) => item.getAsFile());
      const file = imageFile(fromItems) || imageFile(data.files);
      if (file) {
        event.preventDefault();
        predict(file, null, true);
      } else if (!(event.target instanceof HTMLInputElement)) {
        showError("The clipboard holds no image; copy an image (not its file name) and paste again.");
      }
    });
  }

  // ---- drawing -----------------------------------------------------------------------------------

  function setUpCanvas() {
    const canvas = $("draw-canvas");
    const pen = canvas.getContext("2d");
    let last = null; // the pen's last point while it touches the canvas

    function clear() {
      pen.fillStyle = "#fff";
      pen.fillRect(0, 0, canvas.width, canvas.height);
      state.drawn = false;
    }

    function point(event) {
      const box = canvas.getBoundingClientRect();
      return {
        x: ((event.clientX - box.left) * canvas.width) / box.width,
        y: ((event.clientY - box.top) * canvas.height) / box.height,
      };
    }

    function strokeTo(to) {
      pen.strokeStyle = "#000";
      pen.lineWidth = canvas.width * PEN_FRACTION;
      pen.lineCap = "round";
      pen.lineJoin = "round";
      pen.beginPath();
      pen.moveTo(last.x, last.y);
      pen.lineTo(to.x, to.y);
      pen.stroke();
      last = to;
      state.drawn = true;
    }

    function send() {
      if (!state.drawn) {
        showError("Draw something on the canvas first.");
        return;
      }
      canvas.toBlob((blob) => {
        if (blob) predict(blob);
        else showError("The drawing could not be turned into a PNG.");
      }, "image/png");
    }

    canvas.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      last = point(event);
      strokeTo(last); // a tap leaves a dot
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const each of events.length ? events : [event]) strokeTo(point(each));
    });
    const lift = (event) => {
      if (!last) return;
      last = null;
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
      if (event.type === "pointerup") send();
    };
    canvas.addEventListener("pointerup", lift);
    canvas.addEventListener("pointercancel", lift);

    $("clear-button").addEventListener("click", clear);
    $("predict-button").addEventListener("click", send);
    clear();
  }

  // ---- start -------------------------------------------------------------------------------------

  async function loadAll() {
    let info;
    try {
      info = await api("/v1/model");
      renderModel(info);
    } catch (exc) {
      $("subtitle").textContent = "The model is not described yet.";
      report(exc);
      return;
    }
    try {
      await loadSamples();
    } catch (exc) {
      report(exc);
    }
    if (info.per_class_pending) waitForCard(PENDING_TRIES);
  }

  function waitForCard(triesLeft) {
    // per-class figures and sample images appear once the server has gone through the test set
    window.setTimeout(async () => {
      try {
        const info = await api("/v1/model");
        renderModel(info);
        if (!state.samplesShown) await loadSamples();
        if (info.per_class_pending && triesLeft > 1) waitForCard(triesLeft - 1);
      } catch (exc) {
        report(exc);
      }
    }, PENDING_RETRY_MS);
  }

  readToken();
  setUpTokenForm();
  setUpFiles();
  setUpCanvas();
  loadAll();
})();
