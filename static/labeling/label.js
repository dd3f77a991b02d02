// The labeling page: place the target among standards (step 1: 5 deg apart, step 2: 1 deg apart), or flag it.
// Mouse, touch and keyboard drive the same few functions; the answer goes out in an ordinary form POST, which the
// server reads with the API's vote serializer; Reshuffle calls the API itself with the session.
// Every image is shown turned so the galaxy's major axis is horizontal (acquisition made those copies; the page
// never learns the angle), and the target travels along the strip at the standards' size, so shapes are compared
// like with like; U shows the images as observed.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("vote-form");
  const strip = $("strip");
  const started = performance.now();
  const ZOOMS = [1, 1.5, 2, 3, 4];

  const state = { step: 1, cursor: 1, interval: null, flag: "", zoom: 0, view: "color", placedGap: null, turned: true };
  const shown = (item) => (state.turned ? item.url : item.unrotated_url) || item.url;

  const degrees = (step) => {
    const all = Object.keys(data.standards).map(Number).sort((a, b) => a - b);
    if (step === 1) return all.filter((d) => d % 5 === 0);
    return all.filter((d) => d >= state.interval[0] && d <= state.interval[1]);
  };
  // Step 3 (ready to send) keeps showing the strip the answer was placed in.
  const stripStep = () => (state.step === 1 || !state.interval ? 1 : 2);
  const std = (degree) => data.standards[String(degree)];
  const targetSrc = () => $("target-img").src;

  // ---------------------------------------------------------------- the strip
  function gapsOf(step) {
    const ds = degrees(step);
    const gaps = [];
    if (step === 1) gaps.push({ index: 0, left: null, right: ds[0], label: "face-on" });
    for (let k = 1; k < ds.length; k++) {
      const a = std(ds[k - 1]), b = std(ds[k]);
      const value = Math.round(((a.inclination + b.inclination) / 2) * 10) / 10;
      gaps.push({ index: k, left: ds[k - 1], right: ds[k], label: step === 1 ? `${ds[k - 1]}–${ds[k]}°` : `${value}°`, value });
    }
    return gaps;
  }

  function render() {
    const step = stripStep();
    const ds = degrees(step);
    const gaps = gapsOf(step);
    strip.innerHTML = "";
    strip.className = `strip step${step}`;
    const gapAt = (index) => gaps.find((g) => g.index === index);
    const addGap = (gap) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "gap";
      button.dataset.gap = gap.index;
      button.setAttribute("role", "option");
      button.setAttribute("aria-label", gap.index === 0 && step === 1 ? "below 45 degrees: face-on" : `between ${gap.left} and ${gap.right} degrees`);
      const atCursor = gap.index === state.cursor && state.step !== 3;
      if (atCursor) button.classList.add("cursor");
      if (gap.index === state.placedGap) button.classList.add("placed");
      if (atCursor || gap.index === state.placedGap) {
        // The target itself, at the standards' size, between the two it is being compared with.
        const img = document.createElement("img");
        img.src = targetSrc();
        img.alt = "";
        button.appendChild(img);
      }
      const label = document.createElement("span");
      label.textContent = gap.label;
      button.appendChild(label);
      button.addEventListener("click", () => {
        if (state.step === 3) back();  // placing again from the ready state starts that step over
        state.cursor = gap.index;
        place();
      });
      strip.appendChild(button);
    };
    ds.forEach((degree, k) => {
      const g = gapAt(k);
      if (g) addGap(g);
      const s = std(degree);
      const figure = document.createElement("figure");
      figure.className = "standard";
      figure.dataset.degree = degree;
      figure.innerHTML = `<img alt="standard galaxy at ${s.inclination} degrees" loading="lazy"><figcaption>${s.inclination}°</figcaption>`;
      figure.querySelector("img").src = shown(s);
      strip.appendChild(figure);
    });
    const current = strip.querySelector(".gap.cursor");
    if (current) current.scrollIntoView({ block: "nearest", inline: "center" });
    renderSteps();
  }

  function renderSteps() {
    const titles = {
      1: ["Step 1 · Where does it fit?", "Click the gap between the two standards it sits between, or use ← → and Enter. Left of 45° means face-on."],
      2: [`Step 2 · Refine between ${state.interval && state.interval[0]}° and ${state.interval && state.interval[1]}°`, "Now the standards are 1° apart. Click the gap (or ← → Enter). Esc goes back."],
      3: ["Ready to send", "Check your answer, tick “not sure” or add a note if you like, and send it (Enter)."],
    };
    $("step-title").textContent = titles[state.step][0];
    $("step-hint").textContent = titles[state.step][1];
    [1, 2, 3].forEach((n) => $(`step${n}-dot`).classList.toggle("on", state.step >= n));
    $("back").disabled = state.step === 1 && !state.flag;
    $("send").disabled = state.step !== 3;
    $("reshuffle").disabled = state.step === 3;
  }

  function setAnswer({ inclination = "", left = "", right = "", flag = "", text }) {
    $("f-inclination").value = inclination;
    $("f-left").value = left;
    $("f-right").value = right;
    $("f-flag").value = flag;
    $("answer").textContent = text;
    $("answer").classList.toggle("set", Boolean(inclination || flag));
  }

  // ---------------------------------------------------------------- steps
  function place() {
    const gap = gapsOf(state.step).find((g) => g.index === state.cursor);
    if (!gap) return;
    clearFlag();
    state.placedGap = gap.index;
    if (state.step === 1 && gap.index === 0) {
      setAnswer({ flag: "face_on", right: std(gap.right).id, text: "Face-on: rounder than the 45° standard. Step 2 is skipped." });
      state.step = 3;
    } else if (state.step === 1) {
      state.interval = [gap.left, gap.right];
      state.step = 2;
      state.cursor = Math.max(1, Math.ceil(degrees(2).length / 2) - 1);
      state.placedGap = null;
    } else {
      const a = std(gap.left), b = std(gap.right);
      setAnswer({ inclination: gap.value.toFixed(1), left: a.id, right: b.id, text: `Your answer: ${gap.value.toFixed(1)}° (between the ${a.inclination}° and ${b.inclination}° standards)` });
      state.step = 3;
    }
    render();
    if (state.step === 3) $("send").focus({ preventScroll: true });
  }

  function back() {
    if (state.flag) { clearFlag(); state.step = 1; state.placedGap = null; setAnswer({ text: "No answer yet." }); render(); return; }
    if (state.step === 3 && state.interval) { state.step = 2; state.placedGap = null; }
    else { state.step = 1; state.interval = null; state.placedGap = null; state.cursor = 1; }
    setAnswer({ text: "No answer yet." });
    render();
  }

  function move(delta) {
    if (state.step === 3) return;
    const indices = gapsOf(state.step).map((g) => g.index);
    const at = indices.indexOf(state.cursor);
    state.cursor = indices[Math.min(indices.length - 1, Math.max(0, (at < 0 ? 0 : at) + delta))];
    render();
  }

  function clearFlag() {
    state.flag = "";
    document.querySelectorAll(".flag").forEach((b) => { b.classList.remove("on"); b.setAttribute("aria-pressed", "false"); });
  }

  function toggleFlag(button) {
    const value = button.dataset.flag;
    if (state.flag === value) { back(); return; }
    clearFlag();
    state.flag = value;
    button.classList.add("on");
    button.setAttribute("aria-pressed", "true");
    state.step = 3;
    state.interval = null;
    state.placedGap = null;
    setAnswer({ flag: value, text: `Flagged: ${button.firstChild.textContent.trim()}` });
    render();
  }

  function submit() {
    if (state.step !== 3) return;
    $("f-seconds").value = ((performance.now() - started) / 1000).toFixed(1);
    $("send").disabled = true;  // one click, one vote (the server also refuses a second one)
    form.submit();
  }

  async function reshuffle() {
    if (state.step === 3) return;
    const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const response = await fetch(window.GIZ_URLS.reshuffle, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ token: data.token, degrees: degrees(state.step) }),
    });
    const body = await response.json();
    if (!response.ok) { $("answer").textContent = body.error ? body.error.message : "Could not reshuffle."; return; }
    Object.assign(data.standards, body.standards);
    render();
  }

  // ---------------------------------------------------------------- image views
  function setView(view) {
    state.view = view;
    const band = window.GIZ_URLS.band.replace("BAND", view) + (state.turned ? "?horizontal=1" : "");
    $("target-img").src = view === "color" ? shown(data.galaxy) : band;
    document.querySelectorAll("[data-view]").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
    strip.querySelectorAll(".gap img").forEach((img) => { img.src = $("target-img").src; });
  }
  function toggleTurned() {
    state.turned = !state.turned;
    $("unrotated").classList.toggle("on", !state.turned);
    $("unrotated").setAttribute("aria-pressed", String(!state.turned));
    setView(state.view);
    render();
  }
  function toggleInvert() {
    const on = $("viewer").classList.toggle("inverted");
    strip.classList.toggle("inverted", on);
    $("invert").classList.toggle("on", on);
  }
  function zoom(delta) {
    state.zoom = Math.min(ZOOMS.length - 1, Math.max(0, state.zoom + delta));
    $("target-img").style.width = `${ZOOMS[state.zoom] * 100}%`;
    const viewer = $("viewer");
    viewer.scrollLeft = (viewer.scrollWidth - viewer.clientWidth) / 2;
    viewer.scrollTop = (viewer.scrollHeight - viewer.clientHeight) / 2;
  }

  // ---------------------------------------------------------------- tutorial and feedback
  function closeTutorial() {
    const tutorial = $("tutorial");
    if (tutorial.hidden) return;
    tutorial.hidden = true;
    const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
    fetch(window.GIZ_URLS.tutorialDone, { method: "POST", headers: { "X-CSRFToken": csrf } });
  }
  function closeFeedback() {
    const feedback = $("feedback");
    if (feedback) feedback.remove();
  }

  // ---------------------------------------------------------------- wiring
  document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  document.querySelectorAll(".flag").forEach((b) => b.addEventListener("click", () => toggleFlag(b)));
  $("invert").addEventListener("click", toggleInvert);
  $("unrotated").addEventListener("click", toggleTurned);
  $("zoom-in").addEventListener("click", () => zoom(1));
  $("zoom-out").addEventListener("click", () => zoom(-1));
  $("back").addEventListener("click", back);
  $("reshuffle").addEventListener("click", reshuffle);
  $("tutorial-done").addEventListener("click", closeTutorial);
  $("show-help").addEventListener("click", (e) => { e.preventDefault(); $("tutorial").hidden = false; });
  if ($("feedback-next")) $("feedback-next").addEventListener("click", closeFeedback);
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.matches("textarea, input[type=text]");
    if (typing) { if (e.key === "Escape") e.target.blur(); return; }
    if ($("feedback")) { if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); closeFeedback(); } return; }
    if (!$("tutorial").hidden) { if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); closeTutorial(); } return; }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const flags = document.querySelectorAll(".flag");
    const actions = {
      ArrowLeft: () => move(-1),
      ArrowRight: () => move(1),
      Enter: () => (state.step === 3 ? submit() : place()),
      Escape: back,
      Backspace: back,
      n: () => { $("f-not-sure").checked = !$("f-not-sure").checked; },
      s: reshuffle,
      c: () => setView("color"),
      g: () => setView("g"),
      r: () => setView("r"),
      i: () => setView("i"),
      v: toggleInvert,
      u: toggleTurned,
      "+": () => zoom(1),
      "=": () => zoom(1),
      "-": () => zoom(-1),
      "/": () => $("f-note").focus(),
      "?": () => { $("tutorial").hidden = false; },
    };
    if (/^[1-9]$/.test(key) && flags[Number(key) - 1]) { e.preventDefault(); toggleFlag(flags[Number(key) - 1]); return; }
    if (actions[key]) { e.preventDefault(); actions[key](); }
  });

  setView("color");
  render();
})();
