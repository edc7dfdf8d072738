// The YiVideo page: plain JS over the public HTTP API (no build step, nothing external).
"use strict";

// API paths are relative to the page, so the app also works under a route prefix.
const BASE = location.pathname.replace(/[^/]*$/, "");
const url = (path) => BASE + path.replace(/^\//, "");
const $ = (id) => document.getElementById(id);
const PAGE = 10;
const FINAL = ["succeeded", "failed", "cancelled"];
const SPEAKER_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
                         "#8c564b", "#e377c2"];

const state = { info: null, nodes: {}, catalogue: null, offset: 0, total: 0,
                upload: null, stream: null, current: null,
                // workflow id -> object URL of the file this tab uploaded for it (the server
                // names its inputs by content, so the page remembers what it sent)
                uploadedFor: {} };

class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super((error && error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.details = (error && error.details) || [];
    this.retryAfter = retryAfter;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem("yivideo-api-key");
  return key ? { "X-API-Key": key } : {};
}

async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url(path), { method, headers, body });
  let env = null;
  try { env = await resp.json(); } catch (e) { env = null; }
  if (!resp.ok || !env || !env.success) {
    throw new ApiError(resp.status, env && env.error, resp.headers.get("Retry-After"));
  }
  return env.data;
}

// A clear sentence for each failure a user can act on.
function explain(err) {
  if (!(err instanceof ApiError)) return String(err.message || err);
  switch (err.status) {
    case 401:
      showKeyForm(true);
      return "The server needs an API key (or the one given is wrong): enter it above.";
    case 413:
      return `The file is too large: the server accepts up to ${limitText()}.`;
    case 422:
      return "The request is not valid: " + err.message;
    case 429:
      return "Too many requests" + (err.retryAfter ? `: try again in ${err.retryAfter} s.` : ".");
    default:
      return `${err.message} (HTTP ${err.status})`;
  }
}

function say(text, bad = false) {
  const el = $("message");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

function showKeyForm(focus) {
  $("key-form").hidden = false;
  if (focus) $("api-key").focus();
}

function limitText() {
  return state.info ? `${state.info.max_upload_mb} MB` : "the server's limit";
}

// ---------------------------------------------------------------- start

async function start() {
  $("api-key").value = sessionStorage.getItem("yivideo-api-key") || "";
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("yivideo-api-key", $("api-key").value.trim());
    load();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem("yivideo-api-key");
    $("api-key").value = "";
    say("The key is forgotten.");
  });
  setUpUpload();
  $("recipe").addEventListener("change", () => applyRecipe($("recipe").value));
  $("from-form").addEventListener("click", writeJson);
  $("submit").addEventListener("click", submit);
  $("refresh").addEventListener("click", listWorkflows);
  $("status-filter").addEventListener("change", () => { state.offset = 0; listWorkflows(); });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE);
                                               listWorkflows(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; listWorkflows(); });
  $("cancel").addEventListener("click", cancel);
  $("retry").addEventListener("click", retry);
  $("video-path").addEventListener("input", writeJson);
  await load();
}

async function load() {
  try {
    const [info, catalogue] = await Promise.all([api("GET", "/v1/info"), api("GET", "/v1/nodes")]);
    state.info = info;
    state.catalogue = catalogue;
    state.nodes = Object.fromEntries(catalogue.nodes.map((n) => [n.name, n]));
    if (info.auth_enabled) showKeyForm(false);
    $("limit").textContent = `Largest accepted file: ${limitText()}.`;
    buildForm();
    say("");
    await listWorkflows();
    // #workflow=<id> opens that workflow, so a view can be bookmarked or shared
    const linked = /^#workflow=(.+)$/.exec(location.hash);
    if (linked) openWorkflow(decodeURIComponent(linked[1]));
  } catch (err) {
    say(explain(err), true);
  }
}

// ---------------------------------------------------------------- upload

function setUpUpload() {
  const drop = $("drop");
  $("file").addEventListener("change", () => { if ($("file").files[0]) upload($("file").files[0]); });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files[0]) upload(ev.dataTransfer.files[0]);
  });
}

function upload(file) {
  const status = $("upload-status");
  const bar = $("upload-progress");
  if (state.info && file.size > state.info.max_upload_mb * 1024 * 1024) {
    status.textContent = `${file.name} is ${(file.size / 1048576).toFixed(1)} MB: ` +
                         `over the limit of ${limitText()}.`;
    return;
  }
  // XMLHttpRequest, not fetch: only it reports upload progress.
  const xhr = new XMLHttpRequest();
  xhr.open("POST", url(`/v1/files?filename=${encodeURIComponent(file.name)}`));
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  bar.hidden = false;
  bar.value = 0;
  xhr.upload.addEventListener("progress", (ev) => {
    if (ev.lengthComputable) bar.value = Math.round((100 * ev.loaded) / ev.total);
  });
  xhr.addEventListener("load", () => {
    let env = null;
    try { env = JSON.parse(xhr.responseText); } catch (e) { env = null; }
    if (xhr.status === 201 && env && env.success) {
      bar.value = 100;
      state.upload = { path: env.data.path, objectUrl: URL.createObjectURL(file) };
      $("video-path").value = env.data.path;
      status.textContent = `Uploaded ${file.name} (${env.data.size} bytes).`;
      writeJson();
    } else {
      const err = new ApiError(xhr.status, env && env.error, xhr.getResponseHeader("Retry-After"));
      status.textContent = "Upload failed. " + explain(err);
    }
  });
  xhr.addEventListener("error", () => { status.textContent = "Upload failed: no connection."; });
  status.textContent = `Uploading ${file.name}…`;
  xhr.send(file);
}

// ---------------------------------------------------------------- the form

// A param's schema without the "or null" of optional params.
function plain(schema, defs) {
  let s = schema;
  if (s.$ref) s = defs[s.$ref.split("/").pop()] || {};
  if (s.anyOf) {
    const some = s.anyOf.filter((x) => x.type !== "null");
    if (some.length === 1) s = { ...plain(some[0], defs), default: schema.default,
                                  description: schema.description };
  }
  return s;
}

function fieldFor(cap, key, schema, defs, preset) {
  const s = plain(schema, defs);
  const id = `f-${cap}-${key}`;
  const loc = `workflow_config.${cap}.${key}`;
  const dflt = preset !== undefined ? preset : schema.default;
  const p = document.createElement("p");
  p.className = "field";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = key;
  let input;
  if (s.enum) {
    input = document.createElement("select");
    for (const v of s.enum) input.add(new Option(String(v), JSON.stringify(v)));
  } else if (s.type === "boolean") {
    input = document.createElement("select");  // a select keeps "unset" distinct from false
    input.add(new Option("true", "true"));
    input.add(new Option("false", "false"));
  } else {
    input = document.createElement("input");
    input.type = s.type === "integer" || s.type === "number" ? "number" : "text";
    if (s.type === "integer") input.step = "1";
    if (s.type === "number") input.step = "any";
    if (s.minimum !== undefined) input.min = s.minimum;
    if (s.maximum !== undefined) input.max = s.maximum;
  }
  // a select for an optional param needs a way to leave it unset
  if (input.tagName === "SELECT" && (dflt === undefined || dflt === null)) {
    input.add(new Option("(server default)", ""), 0);
  }
  input.id = id;
  input.dataset.loc = loc;
  input.dataset.key = key;
  input.dataset.kind = s.enum || s.type === "boolean" ? "json" : (s.type || "json");
  input.dataset.default = dflt === undefined ? "" : JSON.stringify(dflt);
  setValue(input, dflt);
  input.addEventListener("input", writeJson);
  input.addEventListener("change", writeJson);
  const bounds = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = [s.type || (s.enum ? "choice" : "JSON"), bounds.join(", "),
                      `default ${JSON.stringify(dflt === undefined ? null : dflt)}`,
                      schema.description || s.description || ""].filter(Boolean).join(" · ");
  const error = document.createElement("span");
  error.className = "error";
  error.dataset.errorFor = loc;
  p.append(label, input, hint, error);
  return p;
}

function setValue(input, value) {
  if (value === undefined || value === null) { input.value = ""; return; }
  if (input.dataset.kind === "json" && input.tagName === "SELECT") input.value = JSON.stringify(value);
  else if (typeof value === "object") input.value = JSON.stringify(value);
  else input.value = String(value);
}

// The value a field sends, or undefined to leave the server's default.
function readValue(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (input.dataset.kind === "integer" || input.dataset.kind === "number") {
    const n = Number(raw);
    return Number.isNaN(n) ? raw : n;  // the server says what is wrong with it
  }
  if (input.dataset.kind === "string") return raw;
  try { return JSON.parse(raw); } catch (e) { return raw; }
}

function buildForm() {
  const box = $("capabilities");
  box.textContent = "";
  const recipes = $("recipe");
  recipes.length = 1;
  for (const name of Object.keys(state.catalogue.recipes)) recipes.add(new Option(name, name));
  for (const [cap, options] of Object.entries(state.info.capabilities)) {
    const described = state.catalogue.capabilities[cap] || [];
    const fs = document.createElement("fieldset");
    fs.className = "off";
    fs.dataset.cap = cap;
    const legend = document.createElement("legend");
    const use = document.createElement("input");
    use.type = "checkbox";
    use.id = `use-${cap}`;
    const useLabel = document.createElement("label");
    useLabel.htmlFor = use.id;
    useLabel.textContent = ` ${cap}`;
    legend.append(use, useLabel);
    const params = document.createElement("div");
    params.className = "params";
    const p = document.createElement("p");
    p.className = "field";
    const select = document.createElement("select");
    select.id = `how-${cap}`;
    select.dataset.loc = `workflow_config.${cap}.strategy`;
    options.forEach((o, i) => {
      const d = described.find((x) => x.strategy === o.strategy && x.provider === o.provider);
      select.add(new Option(`${o.strategy} / ${o.provider}${d ? " — " + d.description : ""}`, i));
    });
    const how = document.createElement("label");
    how.htmlFor = select.id;
    how.textContent = "strategy / provider";
    const err = document.createElement("span");
    err.className = "error";
    err.dataset.errorFor = `workflow_config.${cap}.strategy`;
    p.append(how, select, err);
    const fields = document.createElement("div");
    params.append(p, fields);
    fs.append(legend, params);
    box.append(fs);
    const fill = () => { fields.textContent = ""; fields.append(...paramFields(cap, options[select.value])); };
    use.addEventListener("change", () => { fs.classList.toggle("off", !use.checked); writeJson(); });
    select.addEventListener("change", () => { fill(); writeJson(); });
    fill();
  }
  writeJson();
}

// One field per param the provider's nodes take, under the name a user writes.
function paramFields(cap, option) {
  const seen = new Set();
  const out = [];
  for (const step of option.steps) {
    const node = state.nodes[step.node];
    if (!node) continue;
    const props = node.params.properties || {};
    const back = Object.fromEntries(Object.entries(step.renames).map(([k, v]) => [v, k]));
    for (const [param, schema] of Object.entries(props)) {
      const key = back[param] || param;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(fieldFor(cap, key, schema, node.params.$defs || {}, step.params[param]));
    }
  }
  return out;
}

function applyRecipe(name) {
  const config = state.catalogue.recipes[name];
  if (!config) return;
  for (const fs of $("capabilities").querySelectorAll("fieldset")) {
    const cap = fs.dataset.cap;
    const wanted = config[cap];
    const use = $(`use-${cap}`);
    use.checked = wanted !== undefined;
    fs.classList.toggle("off", !use.checked);
    if (!wanted) continue;
    const options = state.info.capabilities[cap];
    const index = Math.max(0, options.findIndex((o) =>
      (!wanted.strategy || o.strategy === wanted.strategy) &&
      (!wanted.provider || o.provider === wanted.provider)));
    const select = $(`how-${cap}`);
    select.value = String(index);
    select.dispatchEvent(new Event("change"));
    for (const [key, value] of Object.entries(wanted)) {
      const input = $(`f-${cap}-${key}`);
      if (input) setValue(input, value);
    }
  }
  writeJson();
}

function formRequest() {
  const workflow = {};
  for (const fs of $("capabilities").querySelectorAll("fieldset")) {
    const cap = fs.dataset.cap;
    if (!$(`use-${cap}`).checked) continue;
    const option = state.info.capabilities[cap][$(`how-${cap}`).value];
    const entry = { strategy: option.strategy, provider: option.provider };
    for (const input of fs.querySelectorAll("[data-key]")) {
      const value = readValue(input);
      // only what differs from the default, so the request stays short
      if (value !== undefined && JSON.stringify(value) !== input.dataset.default) {
        entry[input.dataset.key] = value;
      }
    }
    workflow[cap] = entry;
  }
  return { video_path: $("video-path").value.trim(), workflow_config: workflow };
}

function writeJson() {
  if (!state.info) return;
  $("request-json").value = JSON.stringify(formRequest(), null, 2);
}

function clearErrors() {
  for (const el of document.querySelectorAll("[data-error-for]")) el.textContent = "";
}

// Each 422 detail next to the field its loc names (or its closest parent field).
function showDetails(details, fallback) {
  for (const d of details) {
    let loc = d.loc || "";
    let el = null;
    for (;;) {
      el = document.querySelector(`[data-error-for="${CSS.escape(loc)}"]`);
      if (el || !loc) break;
      loc = loc.includes(".") ? loc.slice(0, loc.lastIndexOf(".")) : "";
    }
    el = el || fallback;
    el.textContent = (el.textContent ? el.textContent + " " : "") + `${d.loc}: ${d.msg}`;
    if (el.closest("fieldset")) {
      const cap = el.closest("fieldset").dataset.cap;
      $(`use-${cap}`).checked = true;
      el.closest("fieldset").classList.remove("off");
    }
  }
}

// The video a request body names (recipe or explicit form), or null.
function sentVideo(body) {
  try {
    const req = JSON.parse(body);
    return req.video_path || (req.inputs && req.inputs.video) || null;
  } catch (e) {
    return null;  // YAML: the page never writes it, so it names no upload of this tab
  }
}

async function submit() {
  clearErrors();
  const out = $("submit-status");
  let body = $("request-json").value;
  if (!body.trim()) body = JSON.stringify(formRequest());
  $("submit").disabled = true;
  try {
    const data = await api("POST", "/v1/workflows", body);
    if (state.upload && sentVideo(body) === state.upload.path) {
      state.uploadedFor[data.id] = state.upload.objectUrl;
    }
    out.textContent = `Started ${data.id}.`;
    state.offset = 0;
    listWorkflows();
    openWorkflow(data.id);
  } catch (err) {
    out.textContent = explain(err);
    if (err.status === 422) {
      const fallback = document.querySelector('[data-error-for=""]');
      showDetails(err.details, fallback);
      if (fallback.textContent) $("advanced").open = true;
    }
  } finally {
    $("submit").disabled = false;
  }
}

// ---------------------------------------------------------------- the list

const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const secs = (s) => (s === null || s === undefined ? "" : `${s.toFixed(1)} s`);

async function listWorkflows() {
  const status = $("status-filter").value;
  const query = `offset=${state.offset}&limit=${PAGE}` + (status ? `&status=${status}` : "");
  try {
    const page = await api("GET", `/v1/workflows?${query}`);
    state.total = page.total;
    const body = $("workflows").tBodies[0];
    body.textContent = "";
    for (const w of page.items) {
      const row = body.insertRow();
      const open = document.createElement("button");
      open.className = "link";
      open.textContent = w.id;
      open.addEventListener("click", () => openWorkflow(w.id));
      row.insertCell().append(open);
      const st = row.insertCell();
      st.textContent = w.status;
      st.className = `status-${w.status}`;
      row.insertCell().textContent = when(w.created_at);
      row.insertCell().textContent = secs(w.duration_s);
    }
    const last = Math.min(state.offset + PAGE, page.total);
    $("page-info").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "none yet";
    $("prev").disabled = state.offset === 0;
    $("next").disabled = last >= page.total;
  } catch (err) {
    say(explain(err), true);
  }
}

// ---------------------------------------------------------------- one workflow

async function openWorkflow(id) {
  if (state.stream) state.stream.abort();
  state.current = id;
  history.replaceState(null, "", `#workflow=${encodeURIComponent(id)}`);
  $("view").hidden = false;
  $("view-id").textContent = id;
  $("result").hidden = true;
  $("view-error").textContent = "";
  $("h-view").scrollIntoView();
  follow(id);
}

// Server-Sent Events read through fetch: EventSource cannot send the API key header.
async function follow(id) {
  const ctl = new AbortController();
  state.stream = ctl;
  let last = null;
  try {
    const resp = await fetch(url(`/v1/workflows/${encodeURIComponent(id)}/events`),
                             { headers: authHeaders(), signal: ctl.signal });
    if (!resp.ok) {
      let env = null;
      try { env = await resp.json(); } catch (e) { env = null; }
      throw new ApiError(resp.status, env && env.error, resp.headers.get("Retry-After"));
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data: "))
          .map((l) => l.slice(6)).join("\n");
        if (data) { last = JSON.parse(data); render(last); }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") return;
    $("view-error").textContent = explain(err);
  }
  if (last && FINAL.includes(last.status) && state.current === id) {
    listWorkflows();
    if (last.status === "succeeded") showResult(last);
  }
}

function render(wf) {
  $("view-status").textContent = wf.status;
  $("view-status").className = `status-${wf.status}`;
  $("view-duration").textContent = wf.duration_s ? `(${secs(wf.duration_s)})` : "";
  $("cancel").disabled = FINAL.includes(wf.status);
  $("retry").disabled = !["failed", "cancelled"].includes(wf.status);
  const err = wf.error;
  $("view-error").textContent = err ?
    `Failed${err.stage ? ` at stage ${err.stage}` : ""}: ${err.message}` : "";
  const list = $("stages");
  list.textContent = "";
  for (const [name, st] of Object.entries(wf.stages)) {
    const li = document.createElement("li");
    const pct = Math.round(100 * (st.status === "succeeded" ? 1 : st.progress || 0));
    const label = document.createElement("span");
    label.id = `stage-${name}`;
    label.textContent = `${name} (${st.node}): `;
    const status = document.createElement("span");
    status.className = `status-${st.status}`;
    status.textContent = `${st.status}${st.cached ? ", cached" : ""} ${pct}%`;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = pct;
    bar.setAttribute("aria-labelledby", label.id);
    li.append(label, status, document.createElement("br"), bar);
    if (st.message) li.append(" ", st.message);
    if (st.error) {
      const e = document.createElement("p");
      e.className = "error";
      e.textContent = `${st.error.type || "error"}: ${st.error.message}` +
        (st.attempts && st.attempts.length ? ` (reason: ${st.attempts[st.attempts.length - 1].reason})` : "");
      li.append(e);
    }
    list.append(li);
  }
}

async function cancel() {
  try { render(await api("DELETE", `/v1/workflows/${encodeURIComponent(state.current)}`)); }
  catch (err) { $("view-error").textContent = explain(err); }
}

async function retry() {
  try {
    await api("POST", `/v1/workflows/${encodeURIComponent(state.current)}/retry`);
    openWorkflow(state.current);
  } catch (err) { $("view-error").textContent = explain(err); }
}

// ---------------------------------------------------------------- the result

const VIDEO = /\.(mp4|m4v|webm|mkv|mov)$/i;

// A URL the page can give to <video>, <track> and links: the artifact itself, or, when an
// API key must be sent (elements cannot send headers), a short-lived signed link to it,
// which still serves Range requests, so the video can be sought in.
async function artifactUrl(id, name) {
  const path = `/v1/workflows/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`;
  if (!authHeaders()["X-API-Key"]) return url(path);
  const link = await api("POST", `/v1/workflows/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}/link`);
  return url(link.url);
}

async function artifactText(id, name) {
  const resp = await fetch(url(`/v1/workflows/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`),
                           { headers: authHeaders() });
  if (!resp.ok) throw new ApiError(resp.status, null, resp.headers.get("Retry-After"));
  return resp.text();
}

async function showResult(wf) {
  const names = wf.artifacts.map((a) => a.name);
  const video = $("video");
  video.textContent = "";
  video.removeAttribute("src");
  $("cues").textContent = "";
  $("result").hidden = false;
  const downloads = $("downloads");
  downloads.textContent = "";
  try {
    for (const a of wf.artifacts) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = await artifactUrl(wf.id, a.name);
      link.download = a.name;
      link.textContent = `${a.name} (${a.size} bytes, from ${a.stage})`;
      li.append(link);
      downloads.append(li);
    }
    // a produced video (dubbed, cleaned) first; else the file uploaded in this tab
    const produced = names.find((n) => VIDEO.test(n));
    const uploaded = state.uploadedFor[wf.id];
    if (produced) {
      video.src = await artifactUrl(wf.id, produced);
      $("video-note").textContent = `Playing ${produced}.`;
    } else if (uploaded) {
      video.src = uploaded;
      $("video-note").textContent = "Playing the uploaded video.";
    } else {
      $("video-note").textContent = "The source video is on the server; upload it in this tab to watch it here.";
    }
    const vtt = names.find((n) => n.endsWith(".vtt"));
    if (!vtt) return;
    const track = document.createElement("track");
    track.kind = "subtitles";
    track.label = vtt;
    track.srclang = (wf.inputs && wf.inputs.language) || "und";
    track.default = true;
    track.src = await artifactUrl(wf.id, vtt);
    video.append(track);
    const json = names.find((n) => n.startsWith("subtitles") && n.endsWith(".json"));
    let cues = null;
    if (json) {
      try { cues = JSON.parse(await artifactText(wf.id, json)).events || null; } catch (e) { cues = null; }
    }
    if (!cues) cues = parseVtt(await artifactText(wf.id, vtt));
    showCues(cues);
  } catch (err) {
    $("video-note").textContent = explain(err);
  }
}

function parseVtt(text) {
  const time = (t) => t.split(":").reduce((acc, x) => acc * 60 + Number(x), 0);
  const cues = [];
  for (const block of text.replace(/\r/g, "").split(/\n\n+/)) {
    const lines = block.split("\n");
    const at = lines.findIndex((l) => l.includes("-->"));
    if (at < 0) continue;
    const [a, b] = lines[at].split("-->").map((s) => s.trim().split(/\s+/)[0]);
    cues.push({ start: time(a), end: time(b), text: lines.slice(at + 1).join("\n"), speaker: null });
  }
  return cues;
}

function showCues(cues) {
  const list = $("cues");
  const colours = {};
  const video = $("video");
  const fmt = (s) => new Date(s * 1000).toISOString().slice(11, 22);
  for (const cue of cues) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${fmt(cue.start)} → ${fmt(cue.end)} `;
    button.append(time);
    if (cue.speaker) {
      if (!(cue.speaker in colours)) {
        colours[cue.speaker] = SPEAKER_COLOURS[Object.keys(colours).length % SPEAKER_COLOURS.length];
      }
      button.style.setProperty("--speaker", colours[cue.speaker]);
      const who = document.createElement("span");
      who.className = "speaker";
      who.style.color = colours[cue.speaker];
      who.textContent = `${cue.speaker}: `;
      button.append(who);
    }
    button.append(cue.text);
    button.addEventListener("click", () => { video.currentTime = cue.start + 0.01; video.play().catch(() => {}); });
    button.dataset.start = cue.start;
    button.dataset.end = cue.end;
    li.append(button);
    list.append(li);
  }
  video.ontimeupdate = () => {
    for (const b of list.querySelectorAll("button")) {
      b.classList.toggle("active", video.currentTime >= b.dataset.start && video.currentTime < b.dataset.end);
    }
  };
}

document.addEventListener("DOMContentLoaded", start);
