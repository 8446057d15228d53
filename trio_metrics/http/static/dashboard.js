// The trio-metrics dashboard: pick keys or type Graphite targets, pick a time
// range, watch the charts. Plain script, no build step; talks only to this
// server's /api/v1 and /graphite/render.
"use strict";

(function () {
  const POLL_MS = 2000;          // charts follow new points this often
  const KEYS_EVERY = 5;          // ...and the key list every 5th poll
  const MAX_LISTED = 200;        // more matches than this: refine the search
  const MAX_CHARTS = 100;        // the API's limit of keys per request
  const MAX_TARGET_CHARTS = 100; // series charted per target; a wide glob could be thousands
  // Graphite series have a step over the whole range, so "all points" has no
  // bounded meaning for a target: it gets graphite's own default range.
  const TARGET_ALL_FROM = "-1d";
  const PLOT_HEIGHT = 220;
  const PALETTE = ["#1f5fbf", "#d1495b", "#2a9d5c", "#8e44ad", "#e07a00", "#00838f",
                   "#c2185b", "#7a8c00"];

  const $ = (id) => document.getElementById(id);
  const state = {
    match: "",          // a glob; empty lists every key
    range: "3600",
    selected: [],        // keys, in the order they were ticked
    listed: [],          // keys shown in the list
    charts: new Map(),   // key -> {panel, plot, last, area}
    colors: new Map(),   // charted key or series -> its colour, kept while charted
    targets: [],         // Graphite target expressions, in the order they were added
    targetViews: new Map(), // expression -> {item, note, charts: name -> chart, failed}
    ticks: 0,
    firstLoad: true,
  };

  function colorOf(key) {
    if (!state.colors.has(key)) {
      const used = new Set(state.colors.values());
      const free = PALETTE.find((color) => !used.has(color));
      state.colors.set(key, free || PALETTE[state.colors.size % PALETTE.length]);
    }
    return state.colors.get(key);
  }

  function timeText(ts) {
    // JavaScript dates end in the year 275760; the protocol's timestamps go further.
    if (ts * 1000 > 8.64e15) return "timestamp " + ts;
    return new Date(ts * 1000).toLocaleString();
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  async function fetchJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // --- the URL remembers the view, so a reload or a shared link shows the same ---

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("match")) state.match = params.get("match");
    if (params.has("range")) state.range = params.get("range");
    if (params.has("keys")) {
      state.selected = keysFromHash(params.getAll("keys")).slice(0, MAX_CHARTS);
      state.firstLoad = false;
    }
    // Each targets= is one expression, whatever it holds (commas, quotes).
    const targets = params.getAll("targets").map((t) => t.trim()).filter(Boolean);
    if (targets.length > 0) {
      state.targets = [...new Set(targets)];
      state.firstLoad = false;
    }
    $("search").value = state.match;
    if ([...$("range").options].some((o) => o.value === state.range)) {
      $("range").value = state.range;
    } else {
      state.range = $("range").value;
    }
  }

  // One keys= is a comma-separated list (#keys=a,b,c, easy to type); a
  // repeated keys= holds one key each, as given, so that a key containing
  // a comma (a key may) can still be named: #keys=a,b&keys= is key "a,b".
  function keysFromHash(values) {
    const keys = values.length === 1 ? values[0].split(",") : values;
    return [...new Set(keys.filter(Boolean))];
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (state.match) params.set("match", state.match);
    params.set("range", state.range);
    for (const key of state.selected) params.append("keys", key);
    // A lone key with a comma would read back as a list: repeat keys=.
    if (state.selected.length === 1 && state.selected[0].includes(",")) params.append("keys", "");
    // URLSearchParams percent-encodes every byte that could be read otherwise.
    for (const target of state.targets) params.append("targets", target);
    history.replaceState(null, "", "#" + params.toString());
  }

  // --- the key list ---

  async function loadKeys() {
    const query = state.match ? "?match=" + encodeURIComponent(state.match) : "";
    const answer = await fetchJson("/api/v1/keys" + query);
    const keys = answer.keys;
    if (state.firstLoad) {
      state.firstLoad = false;
      state.selected = keys.slice(0, 4);
      syncCharts();
      writeHash();
    }
    const shown = keys.slice(0, MAX_LISTED);
    // Ticked keys stay listed (and tickable) even when the search hides them.
    for (const key of state.selected) if (!shown.includes(key)) shown.push(key);
    $("keys-summary").textContent =
      keys.length === 0 ? (state.match ? "No key matches " + state.match + "." : "No keys yet.")
      : keys.length > MAX_LISTED ? `${keys.length} keys match; the first ${MAX_LISTED} are listed.`
      : `${keys.length} key${keys.length === 1 ? "" : "s"} match.`;
    if (shown.join("\n") !== state.listed.join("\n")) renderKeyList(shown);
  }

  // At most 4 decimals (collectd sends 32.3076923076923), no grouping (a
  // value reads as it was sent), and tiny values in significant digits.
  function valueText(value) {
    if (value !== 0 && Math.abs(value) < 1e-3) return String(Number(value.toPrecision(4)));
    return value.toLocaleString("en-US", { maximumFractionDigits: 4, useGrouping: false });
  }

  // Long dotted keys (collectd's) wrap after a dot, not in the middle of a word.
  function keyLabel(key) {
    const parts = key.split(".");
    const nodes = [];
    parts.forEach((part, i) => {
      nodes.push(document.createTextNode(i < parts.length - 1 ? part + "." : part));
      if (i < parts.length - 1) nodes.push(document.createElement("wbr"));
    });
    return nodes;
  }

  // The y axis as wide as its longest label (uPlot's auto-size recipe):
  // a fixed width cut off values in the millions.
  function axisSize(u, values, axisIdx, cycleNum) {
    const axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    let size = axis.ticks.size + axis.gap;
    const longest = (values || []).reduce((a, v) => (v.length > a.length ? v : a), "");
    if (longest !== "") {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size);
  }

  function renderKeyList(keys) {
    const list = $("keys");
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : undefined;
    list.replaceChildren();
    for (const key of keys) {
      const item = document.createElement("li");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.key = key;
      box.checked = state.selected.includes(key);
      box.addEventListener("change", () => { box.checked = toggle(key, box.checked); });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      if (box.checked) swatch.style.background = colorOf(key);
      swatch.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "key-name";
      name.append(...keyLabel(key));
      label.append(box, swatch, name);
      item.append(label);
      list.append(item);
      if (key === focused) box.focus();
    }
    state.listed = keys;
  }

  function toggle(key, on) {
    state.selected = state.selected.filter((k) => k !== key);
    if (on) {
      if (state.selected.length >= MAX_CHARTS) {
        setStatus(`At most ${MAX_CHARTS} charts at once.`, true);
        return false;
      }
      state.selected.push(key);
    }
    syncCharts();
    paintSwatches();
    writeHash();
    refresh().catch((error) => setStatus("Cannot reach the server (" + error.message + ")", true));
    return on;
  }

  function paintSwatches() {
    for (const box of $("keys").querySelectorAll("input[type=checkbox]")) {
      const swatch = box.nextElementSibling;
      swatch.style.background = box.checked ? colorOf(box.dataset.key) : "";
    }
  }

  // --- the charts ---

  // Charts follow their panel's width (window resizes, charts added or removed).
  const chartOfArea = new Map();   // plot area element -> its chart, keys' and targets'
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = chartOfArea.get(entry.target);
      const width = Math.max(Math.floor(entry.contentRect.width), 200);
      if (chart && chart.plot.width !== width) {
        chart.plot.setSize({ width, height: PLOT_HEIGHT });
      }
    }
  });

  function xRange(u, min, max) {
    if (state.range !== "all") {
      const now = Date.now() / 1000;
      return [now - Number(state.range), now];
    }
    if (min == null || max == null) {
      const now = Date.now() / 1000;
      return [now - 3600, now];
    }
    return min === max ? [min - 60, max + 60] : [min, max];
  }

  // One line per tick label, as precise as the visible span needs.
  function timeTicks(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    const format =
      span <= 600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
      : span <= 36 * 3600 ? { hour: "2-digit", minute: "2-digit" }
      : span <= 7 * 86400 ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
      : { year: "numeric", month: "short", day: "numeric" };
    return splits.map((ts) =>
      ts * 1000 > 8.64e15 ? String(ts) : new Date(ts * 1000).toLocaleString(undefined, format));
  }

  // One chart, for a key or for a series of a target: the same panel and plot.
  function makeChart(name, color) {
    const panel = document.createElement("section");
    panel.className = "chart";
    panel.setAttribute("aria-label", "Chart of " + name);
    const title = document.createElement("h2");
    title.textContent = name;
    const last = document.createElement("p");
    last.className = "last";
    last.textContent = "No points in this range yet.";
    const area = document.createElement("div");
    area.className = "plot";
    panel.append(title, last, area);
    $("charts").append(panel);
    const axis = { stroke: "#5b6473", grid: { stroke: "#eceff3" }, ticks: { stroke: "#d7dce4" } };
    const plot = new uPlot({
      width: Math.max(area.clientWidth, 200),
      height: PLOT_HEIGHT,
      scales: { x: { time: true, range: xRange } },
      series: [
        {},
        // A null (a Graphite gap) is a gap in the line: spanGaps stays off.
        { label: name, stroke: color, width: 2, fill: color + "1f", points: { size: 5 } },
      ],
      axes: [{ ...axis, values: timeTicks, space: 90, size: 40 }, { ...axis, size: axisSize }],
      legend: { live: true },
      // No drag-to-zoom: the next poll would reset it every 2 seconds.
      cursor: { drag: { x: false, y: false } },
    }, [[], []], area);
    const chart = { panel, plot, last, area };
    chartOfArea.set(area, chart);
    resizer.observe(area);
    return chart;
  }

  function dropChart(chart) {
    resizer.unobserve(chart.area);
    chartOfArea.delete(chart.area);
    chart.plot.destroy();
    chart.panel.remove();
  }

  // Key charts in the order the keys were ticked, then each target's in turn.
  function arrangeCharts() {
    const charts = $("charts");
    for (const key of state.selected) {
      const chart = state.charts.get(key);
      if (chart) charts.append(chart.panel);
    }
    for (const target of state.targets) {
      const view = state.targetViews.get(target);
      if (view) for (const chart of view.charts.values()) charts.append(chart.panel);
    }
    const targetCharts = [...state.targetViews.values()].some((v) => v.charts.size > 0);
    $("empty").hidden = state.selected.length > 0 || state.targets.length > 0 || targetCharts;
  }

  function syncCharts() {
    for (const [key, chart] of state.charts) {
      if (!state.selected.includes(key)) {
        state.colors.delete(key);
        dropChart(chart);
        state.charts.delete(key);
      }
    }
    for (const key of state.selected) {
      if (!state.charts.has(key)) state.charts.set(key, makeChart(key, colorOf(key)));
    }
    arrangeCharts();
  }

  // Draws [timestamp, value or null] points; the caption names the last value
  // (the last non-null one: a target's newest slot is often still empty).
  function show(chart, points, total, step) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    chart.plot.setData([xs, ys]);
    let lastIndex = points.length - 1;
    while (lastIndex >= 0 && points[lastIndex][1] === null) lastIndex -= 1;
    if (lastIndex < 0) {
      chart.last.textContent = "No points in this range yet.";
      return;
    }
    const [ts, value] = points[lastIndex];
    const strong = document.createElement("strong");
    strong.className = "value";
    strong.textContent = valueText(value);
    // With retention rules, a range past the finest tier comes from a coarser one.
    const tier = step ? ` · one per ${stepText(step)}` : "";
    chart.last.replaceChildren(
      "last ", strong, ` at ${timeText(ts)} · ${total} point${total === 1 ? "" : "s"}${tier}`
    );
  }

  function stepText(seconds) {
    for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"]]) {
      if (seconds % size === 0) return `${seconds / size} ${unit}`;
    }
    return `${seconds} s`;
  }

  async function refresh() {
    if (state.selected.length === 0) return;
    const params = new URLSearchParams();
    for (const key of state.selected) params.append("key", key);
    // About two points per pixel: the server keeps each run's lowest and highest.
    params.set("max_points", String(2 * widestChart()));
    if (state.range !== "all") {
      params.set("from", String(Math.max(0, Math.floor(Date.now() / 1000) - Number(state.range))));
    }
    const answer = await fetchJson("/api/v1/series?" + params.toString());
    for (const series of answer.series) {
      const chart = state.charts.get(series.key);
      if (chart) show(chart, series.points, series.total, series.step);
    }
  }

  function widestChart() {
    const widths = [...chartOfArea.values()].map((c) => c.plot.width);
    // No chart yet: a grid column's width, as the first chart will have.
    return Math.max(200, Math.floor($("charts").clientWidth / 2), ...widths);
  }

  // --- Graphite targets: any render expression, one chart per series it returns ---

  // The render answer for one target: {series} or, for a target the server
  // refuses (a 400), {error: graphite's message}.
  async function render(target) {
    const params = new URLSearchParams();
    params.set("target", target);
    params.set("from", state.range === "all" ? TARGET_ALL_FROM
      : String(Math.max(0, Math.floor(Date.now() / 1000) - Number(state.range))));
    params.set("until", "now");
    params.set("format", "json");
    // About two points per pixel; the server consolidates as graphite-web does.
    params.set("maxDataPoints", String(2 * widestChart()));
    const response = await fetch("/graphite/render?" + params.toString(), { cache: "no-store" });
    if (response.status === 400) return { error: (await response.text()).trim() };
    if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
    return { series: await response.json() };
  }

  function seriesId(target, name) {
    return "\u0000" + target + "\u0000" + name;   // no key holds a NUL: no clash
  }

  function makeTargetView(target) {
    const item = document.createElement("li");
    const expression = document.createElement("code");
    expression.className = "target-expression";
    expression.textContent = target;
    const note = document.createElement("span");
    note.className = "target-note";
    note.textContent = "Loading…";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove target " + target);
    remove.addEventListener("click", () => removeTarget(target));
    item.append(expression, note, remove);
    $("targets").append(item);
    return { item, note, charts: new Map(), failed: false };
  }

  function applyRender(target, answer) {
    const view = state.targetViews.get(target);
    if (!view) return;   // removed while its answer was on the way
    view.failed = "error" in answer;
    view.note.classList.toggle("error", view.failed);
    const found = view.failed ? [] : answer.series;
    const shown = found.slice(0, MAX_TARGET_CHARTS);
    // Series may share a name (group(a.b, a.b)): each still gets its own chart.
    const seen = new Map();
    const ids = shown.map((series) => {
      const count = (seen.get(series.target) || 0) + 1;
      seen.set(series.target, count);
      return count === 1 ? series.target : series.target + "\u0000" + count;
    });
    for (const [id, chart] of view.charts) {
      if (!ids.includes(id)) {
        state.colors.delete(seriesId(target, id));
        dropChart(chart);
        view.charts.delete(id);
      }
    }
    let added = false;
    shown.forEach((series, i) => {
      let chart = view.charts.get(ids[i]);
      if (!chart) {
        chart = makeChart(series.target, colorOf(seriesId(target, ids[i])));
        chart.panel.dataset.target = target;
        if (series.target !== target) {
          chart.panel.setAttribute("aria-label", `Chart of ${series.target}, from the target ${target}`);
        }
        view.charts.set(ids[i], chart);
        added = true;
      }
      const points = series.datapoints.map(([value, ts]) => [ts, value]);
      const total = points.filter((p) => p[1] !== null).length;
      show(chart, points, total, 0);
    });
    if (added) {
      // New series take their place in the server's order.
      view.charts = new Map(ids.map((id) => [id, view.charts.get(id)]));
      arrangeCharts();
    }
    view.note.textContent = view.failed ? answer.error
      : found.length === 0 ? "No series match this target."
      : found.length > shown.length ? `${found.length} series; the first ${shown.length} are charted.`
      : `${found.length} series`;
  }

  // A refused target is not asked again until the range changes: its answer
  // would be the same 400, which the browser logs each time.
  async function refreshTargets() {
    const asked = state.targets.filter((t) => !state.targetViews.get(t)?.failed);
    const answers = await Promise.all(asked.map((target) => render(target)));
    asked.forEach((target, i) => applyRender(target, answers[i]));
  }

  function syncTargets() {
    for (const [target, view] of state.targetViews) {
      if (!state.targets.includes(target)) {
        for (const [name, chart] of view.charts) {
          state.colors.delete(seriesId(target, name));
          dropChart(chart);
        }
        view.item.remove();
        state.targetViews.delete(target);
      }
    }
    for (const target of state.targets) {
      if (!state.targetViews.has(target)) state.targetViews.set(target, makeTargetView(target));
    }
    arrangeCharts();
  }

  function setTargetError(text) {
    $("target-error").textContent = text;
    $("target-error").hidden = !text;
  }

  async function addTarget(target) {
    if (!target) {
      setTargetError("Type a Graphite target, such as sumSeries(web.*.requests).");
      return;
    }
    if (state.targets.includes(target)) {
      setTargetError("This target is already charted.");
      return;
    }
    // Asked before it is added: a target the server refuses stays in the box to fix.
    const answer = await render(target);
    if ("error" in answer) {
      setTargetError(answer.error);
      return;
    }
    setTargetError("");
    if (state.targets.includes(target)) return;   // added meanwhile (Enter pressed twice)
    state.targets.push(target);
    syncTargets();
    applyRender(target, answer);
    writeHash();
    $("target").value = "";
  }

  function removeTarget(target) {
    const index = state.targets.indexOf(target);
    state.targets = state.targets.filter((t) => t !== target);
    syncTargets();
    writeHash();
    // Focus moves to the next target's button, or back to the box.
    const buttons = $("targets").querySelectorAll("button.remove");
    (buttons[Math.min(index, buttons.length - 1)] || $("target")).focus();
  }

  async function poll() {
    try {
      if (state.ticks % KEYS_EVERY === 0) await loadKeys();
      await Promise.all([refresh(), refreshTargets()]);
      const charted = chartOfArea.size;
      setStatus(`Live · ${charted} chart${charted === 1 ? "" : "s"} · updated ` +
                new Date().toLocaleTimeString());
    } catch (error) {
      setStatus("Cannot reach the server (" + error.message + "); retrying…", true);
    }
    state.ticks += 1;
    setTimeout(poll, POLL_MS);
  }

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.match = $("search").value.trim();
    writeHash();
    loadKeys().catch((error) => setStatus("Search failed: " + error.message, true));
  });
  $("range").addEventListener("change", () => {
    state.range = $("range").value;
    writeHash();
    for (const view of state.targetViews.values()) view.failed = false;
    Promise.all([refresh(), refreshTargets()])
      .catch((error) => setStatus("Cannot reach the server (" + error.message + ")", true));
  });
  $("target-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addTarget($("target").value.trim())
      .catch((error) => setTargetError("Cannot reach the server (" + error.message + ")"));
  });

  readHash();
  syncCharts();
  syncTargets();
  // For scripts and tests that look inside the page: key -> uPlot instance, and
  // [target, series name, uPlot instance] for each series of each target.
  window.dashboard = {
    plots: () => new Map([...state.charts].map(([k, c]) => [k, c.plot])),
    targetPlots: () => state.targets.flatMap((target) =>
      [...(state.targetViews.get(target)?.charts.values() || [])]
        .map((c) => [target, c.plot.series[1].label, c.plot])),
  };
  poll();
})();
