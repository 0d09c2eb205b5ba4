// xreid dashboard: plain JavaScript over the JSON API, no framework, no build step, no CDN.
// Views (hash routes): #/ overview (cameras + recent identities), #/identities/<id> (a person's
// cross-camera timeline), #/search (upload an image or give a track id).
// Every data request carries the bearer token (kept in sessionStorage) when the server wants one;
// images are fetched the same way and shown through object URLs, since <img src> cannot send headers.
"use strict";

const TOKEN_KEY = "xreid.token";
const view = () => document.getElementById("view");

// ---------------------------------------------------------------- DOM and formatting helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function fmtDuration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - 60 * m)} s`;
}

function badge(text, cls) {
  return h("span", { class: `badge ${cls || text}` }, text);
}

// ---------------------------------------------------------------- API access

class Unauthorized extends Error {}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) opts.headers = Object.assign({}, opts.headers, { Authorization: `Bearer ${token}` });
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    askToken();
    throw new Unauthorized("a valid API token is required");
  }
  return resp;
}

async function apiJson(path, options) {
  const resp = await api(path, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  if (!dialog.open) dialog.showModal();
}

// An <img> whose bytes come through api(), so the token travels with them.
function authImg(url, cls, alt) {
  const img = h("img", { class: cls, alt: alt || "" });
  // no crop stored (embeddings-only mode, retention, or none taken): a placeholder, not a broken image
  if (!url) return h("div", { class: `${cls} placeholder`, title: "no crop kept" }, "no crop");
  api(url)
    .then((resp) => (resp.ok ? resp.blob() : null))
    .then((blob) => {
      if (blob) img.src = URL.createObjectURL(blob);
    })
    .catch(() => {});
  return img;
}

function showError(err) {
  view().replaceChildren(h("p", { class: "error" }, err instanceof Unauthorized ? "Enter the API token to continue." : String(err.message || err)));
}

// ---------------------------------------------------------------- overview

// A day/night camera's modality over time (GET /cameras/{id}/modality): one bar per span, colour
// or infrared, from its first recorded modality to its last track (or the end of its last span).
function modalityStrip(cameraId, lastSeen) {
  const box = h("div", { class: "modality-timeline", "data-camera": cameraId });
  apiJson(`/cameras/${encodeURIComponent(cameraId)}/modality`).then((spans) => {
    if (!spans.length) return;
    const t0 = Date.parse(spans[0].t_start);
    const ends = spans.map((s) => Date.parse(s.t_end || lastSeen || s.t_start));
    const t1 = Math.max(t0 + 1000, ...ends);
    const W = 240, H = 14;
    const strip = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${cameraId}: colour and infrared periods` });
    spans.forEach((s, i) => {
      const start = Date.parse(s.t_start);
      const bar = svg("rect", { class: `timeline-bar ${s.modality}`, x: ((start - t0) / (t1 - t0)) * W, y: 1,
        width: Math.max(1, ((ends[i] - start) / (t1 - t0)) * W), height: H - 2, "data-modality": s.modality });
      bar.append(svg("title", {}, `${s.modality === "ir" ? "infrared" : "colour"}: ${fmtTime(s.t_start)} → ${s.t_end ? fmtTime(s.t_end) : "now"}`));
      strip.append(bar);
    });
    const n = spans.filter((s) => s.switched_in).length;
    box.replaceChildren(strip, h("span", { class: "muted" }, ` ${n} day/night switch${n === 1 ? "" : "es"}`));
  }).catch(() => {});
  return box;
}

async function renderOverview() {
  const camerasBox = h("section", { id: "cameras" }, h("h2", {}, "Cameras"), h("p", { class: "muted" }, "Loading…"));
  const idsGrid = h("div", { class: "grid", id: "identities" });
  const more = h("button", { id: "more-identities", hidden: true }, "More identities");
  const idsBox = h("section", {}, h("h2", {}, "Recent identities"), idsGrid, h("p", {}, more));
  view().replaceChildren(h("h1", {}, "Overview"), camerasBox, idsBox);

  const cameras = await apiJson("/cameras");
  const rows = cameras.map((c) =>
    h("tr", { "data-camera": c.camera_id },
      h("td", {}, h("code", {}, c.camera_id), c.source ? h("div", { class: "muted" }, h("code", {}, c.source)) : null,
        c.modality_switches ? modalityStrip(c.camera_id, c.last_seen) : null),
      h("td", {}, c.modalities.map((m) => badge(m)),
        c.current_modality ? h("span", { class: "muted" }, ` now ${c.current_modality}`) : null),
      h("td", {}, c.status ? badge(c.status) : h("span", { class: "muted" }, "no status recorded"),
        c.reason ? h("span", { class: "muted" }, ` ${c.reason}`) : null),
      h("td", {}, c.n_tracks),
      h("td", {}, fmtTime(c.first_seen)),
      h("td", {}, fmtTime(c.last_seen))));
  camerasBox.replaceChildren(h("h2", {}, `Cameras (${cameras.length})`),
    cameras.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["camera", "modalities", "status", "tracks", "first seen", "last seen"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No camera has produced a track yet."));

  let offset = 0;
  const loadPage = async () => {
    const page = await apiJson(`/identities?limit=24&offset=${offset}`);
    if (page.total === 0) idsGrid.replaceChildren(h("p", { class: "muted" }, "No identities yet."));
    for (const ident of page.items) idsGrid.append(identityCard(ident));
    offset = page.next_offset;
    more.hidden = page.next_offset === null;
  };
  more.addEventListener("click", () => loadPage().catch(showError));
  await loadPage();
}

function identityCard(ident) {
  return h("a", { class: "identity-card", href: `#/identities/${ident.identity_id}`, "data-identity": ident.identity_id },
    h("div", { class: "pair" },
      h("div", {}, authImg(ident.thumbnails.rgb, "thumb", `identity ${ident.identity_id} RGB`), h("div", { class: "thumb-label" }, badge("rgb"))),
      h("div", {}, authImg(ident.thumbnails.ir, "thumb", `identity ${ident.identity_id} thermal`), h("div", { class: "thumb-label" }, badge("ir")))),
    h("div", { class: "card-meta" },
      h("strong", {}, `Person #${ident.identity_id}`), h("br"),
      `${ident.n_tracks} track${ident.n_tracks === 1 ? "" : "s"} · ${ident.cameras.join(", ")}`, h("br"),
      h("span", { class: "muted" }, `last seen ${fmtTime(ident.last_seen)}`)));
}

// ---------------------------------------------------------------- identity page

async function renderIdentity(id) {
  view().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const ident = await apiJson(`/identities/${encodeURIComponent(id)}`);
  const rows = ident.timeline.map((t) =>
    h("tr", { class: "track-row", "data-track": t.track_uid },
      h("td", {}, authImg(t.thumbnail_url, "small-thumb", t.track_uid)),
      h("td", {}, h("code", {}, t.camera_id)),
      h("td", {}, badge(t.modality)),
      h("td", {}, fmtTime(t.t_start)),
      h("td", {}, fmtTime(t.t_end)),
      h("td", {}, fmtDuration(t.duration_s)),
      h("td", {}, h("code", {}, t.track_uid)),
      h("td", {}, h("a", { href: `#/search?track=${encodeURIComponent(t.track_uid)}` }, "similar…"))));
  view().replaceChildren(
    h("h1", { id: "identity-title" }, `Person #${ident.identity_id}`),
    h("p", {}, `${ident.n_tracks} tracks on ${ident.cameras.length} camera${ident.cameras.length === 1 ? "" : "s"} `,
      ident.modalities.map((m) => badge(m)), h("span", { class: "muted" }, ` from ${fmtTime(ident.first_seen)} to ${fmtTime(ident.last_seen)}`)),
    h("div", { class: "pair identity-pair" },
      h("div", {}, authImg(ident.thumbnails.rgb, "thumb", "RGB"), h("div", { class: "thumb-label" }, badge("rgb"))),
      h("div", {}, authImg(ident.thumbnails.ir, "thumb", "thermal"), h("div", { class: "thumb-label" }, badge("ir")))),
    h("h2", {}, "Timeline"),
    timeline(ident.timeline),
    h("h2", {}, "Tracks"),
    h("table", { id: "tracks" }, h("thead", {}, h("tr", {}, ["", "camera", "modality", "start", "end", "duration", "track", ""].map((t) => h("th", {}, t)))), h("tbody", {}, rows)),
    h("h2", {}, "Contact sheet"),
    authImg(ident.contact_sheet_url, "contact-sheet", "all crops"));
}

// One lane per (camera, modality); one bar per track, positioned by time.
function timeline(tracks) {
  const lanes = [...new Set(tracks.map((t) => `${t.camera_id} · ${t.modality}`))].sort();
  const t0 = Math.min(...tracks.map((t) => Date.parse(t.t_start)));
  const t1 = Math.max(...tracks.map((t) => Date.parse(t.t_end)));
  const span = Math.max(t1 - t0, 1000);
  const left = 170, width = 1000, laneH = 28, top = 10, bottom = 26;
  const height = top + lanes.length * laneH + bottom;
  const x = (ms) => left + ((ms - t0) / span) * (width - left - 10);
  const root = svg("svg", { id: "timeline", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "timeline" });
  lanes.forEach((lane, i) => {
    const y = top + i * laneH;
    root.append(svg("line", { class: "grid-line", x1: left, x2: width - 10, y1: y + laneH / 2, y2: y + laneH / 2 }));
    root.append(svg("text", { class: "lane-label", x: 4, y: y + laneH / 2 + 4 }, lane));
  });
  for (const t of tracks) {
    const lane = lanes.indexOf(`${t.camera_id} · ${t.modality}`);
    const xs = x(Date.parse(t.t_start));
    const w = Math.max(x(Date.parse(t.t_end)) - xs, 3);
    const bar = svg("rect", { class: `timeline-bar ${t.modality}`, x: xs, y: top + lane * laneH + 6, width: w, height: laneH - 12, rx: 3, "data-track": t.track_uid });
    bar.append(svg("title", {}, `${t.track_uid}\n${t.camera_id} (${t.modality})\n${fmtTime(t.t_start)} → ${fmtTime(t.t_end)}`));
    root.append(bar);
  }
  const axisY = top + lanes.length * laneH + 16;
  for (let i = 0; i <= 4; i++) {
    const ms = t0 + (span * i) / 4;
    root.append(svg("text", { class: "axis", x: x(ms), y: axisY, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      new Date(ms).toISOString().slice(11, 19)));
  }
  return h("div", { class: "timeline" }, h("div", { class: "legend" }, badge("rgb"), badge("ir"), h("span", { class: "muted" }, "one bar per track; hover for details")), root);
}

// ---------------------------------------------------------------- search

function renderSearch(params) {
  const files = h("input", { type: "file", id: "search-files", name: "images", accept: "image/jpeg,image/png,image/webp,image/bmp", multiple: true });
  const modality = h("select", { id: "search-modality", name: "modality" }, h("option", { value: "rgb" }, "RGB"), h("option", { value: "ir" }, "thermal"));
  const track = h("input", { type: "text", id: "search-track", placeholder: "…or a track id", value: params.get("track") || "" });
  const results = h("section", { id: "search-results" });
  const form = h("form", { class: "search", id: "search-form" },
    h("label", {}, "Image(s) of one person: ", files), modality, track, h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSearch(files, modality.value, track.value.trim(), results).catch((err) => {
      results.replaceChildren(h("p", { class: "error" }, String(err.message || err)));
    });
  });
  view().replaceChildren(h("h1", {}, "Search"), h("p", { class: "muted" }, "Nearest identities by X-ReID embedding."), form, results);
  if (track.value) form.requestSubmit();
}

async function runSearch(filesInput, modality, trackId, results) {
  const body = new FormData();
  if (filesInput.files.length) {
    for (const f of filesInput.files) body.append("images", f, f.name);
  } else if (trackId) {
    body.append("track_id", trackId);
  } else {
    throw new Error("choose an image or enter a track id");
  }
  body.append("modality", modality);
  body.append("k", "10");
  results.replaceChildren(h("p", { class: "muted" }, "Searching…"));
  const res = await apiJson("/search", { method: "POST", body });
  const items = res.hits.map((hit) =>
    h("li", { class: "hit" },
      h("div", { class: "pair" }, authImg(hit.thumbnails.rgb, "thumb", "RGB"), authImg(hit.thumbnails.ir, "thumb", "thermal")),
      h("div", {},
        h("a", { href: `#/identities/${hit.identity_id}` }, `Person #${hit.identity_id}`), " ",
        h("span", { class: "score" }, hit.score.toFixed(3)), h("br"),
        h("span", { class: "muted" }, `best match: ${hit.camera_id} (${hit.modality}) · ${hit.n_tracks} tracks · last seen ${fmtTime(hit.last_seen)}`))));
  results.replaceChildren(
    h("h2", {}, `${res.hits.length} nearest identit${res.hits.length === 1 ? "y" : "ies"}`),
    h("p", { class: "muted" }, `model ${res.model_id || "—"}`),
    items.length ? h("ul", { class: "hits" }, items) : h("p", { class: "muted" }, "No identity has an embedding from this model yet."));
}

// ---------------------------------------------------------------- routing

async function render() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/").split("?");
  const params = new URLSearchParams(query || "");
  try {
    const m = path.match(/^\/identities\/(\d+)$/);
    if (m) await renderIdentity(m[1]);
    else if (path === "/search") renderSearch(params);
    else await renderOverview();
  } catch (err) {
    showError(err);
  }
}

async function refreshStatus() {
  const el = document.getElementById("store-status");
  try {
    const health = await (await fetch("/health")).json();
    el.textContent = health.status === "ok" ? `store schema v${health.store.schema_version}` : `store: ${health.store.error}`;
    el.className = health.status === "ok" ? "muted" : "error";
  } catch (err) {
    el.textContent = "API unreachable";
    el.className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    render();
  });
  window.addEventListener("hashchange", render);
  refreshStatus();
  render();
});
