// mmrag web page: ask (streamed over SSE), evidence cards, previews and a player that seeks to the cited second.
// Vanilla JS, no build step, no network access beyond this server.
"use strict";

const TOKEN_KEY = "mmrag-token";
const $ = (id) => document.getElementById(id);

(function takeToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function authHeaders() { return token() ? { Authorization: "Bearer " + token() } : {}; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function api(path) {
  const res = await fetch(path, { headers: authHeaders() });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return res;
}

// A URL an <img>/<video>/<audio> can load. Without a token, or when the API signed the URL (it does
// when a token is set), the URL itself: the element streams it and seeks with Range requests. Else
// (an unsigned URL under a token) a blob fetched with the Authorization header.
function isSigned(path) { return /[?&]sig=/.test(path); }
async function mediaUrl(path) {
  if (!token() || isSigned(path)) return path;
  const res = await api(path);
  return URL.createObjectURL(await res.blob());
}

function filterParams() {
  const params = new URLSearchParams();
  if ($("modality").value) params.append("modality", $("modality").value);
  const folder = $("folder").value.trim();
  if (folder) params.append("folder", folder);
  return params;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function isTimed(item) { return item.locator && item.locator.start !== undefined; }
function isAudio(source) { return /\.(mp3|wav|m4a|aac|ogg|oga|flac|opus)$/i.test(source); }

// Read an SSE body: calls onEvent(name, data) per event.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// The answer text with [n] markers turned into buttons that open citation n.
function renderAnswer(text, citations) {
  const box = $("answer");
  box.replaceChildren();
  const byN = new Map(citations.map((c) => [c.n, c]));
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const m = part.match(/^\[(\d+)\]$/);
    const cited = m && byN.get(Number(m[1]));
    if (cited) {
      box.append(el("button", { class: "cite", type: "button", title: cited.source + " " + cited.cite,
        "aria-label": "citation " + cited.n + ": " + cited.source + ", " + cited.cite, onclick: () => openEvidence(cited) }, m[1]));
    } else {
      box.append(document.createTextNode(part));
    }
  }
}

// What the citation check found in a generated answer: sentences its evidence does not support (removed
// in strict mode, else left in), markers to evidence that was never given, or no citation at all.
function showChecks(data) {
  const box = $("answer-checks");
  const flagged = data.flagged || [];
  const removed = data.removed_citations || [];
  const uncited = !data.declined && !data.extractive && data.citations.length === 0;
  if (!flagged.length && !removed.length && !uncited) {
    box.replaceChildren();
    box.hidden = true;
    return;
  }
  const parts = [el("strong", {}, "Check this answer against its sources.")];
  if (uncited) parts.push(el("p", {}, "It cites no evidence."));
  if (flagged.length) {
    parts.push(el("p", {}, data.strict
      ? "Removed from it, because the evidence they cite does not support them:"
      : "Not supported by the evidence they cite:"));
    parts.push(el("ul", {}, ...flagged.map((sentence) => el("li", {}, sentence))));
  }
  if (removed.length) {
    parts.push(el("p", {}, "Citations to evidence that was never given were removed: " +
      removed.map((n) => "[" + n + "]").join(", ") + "."));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

function card(item, label) {
  const thumb = el("div", { class: "thumb" });
  const button = el("button", { class: "card", type: "button", onclick: () => openEvidence(item) },
    el("div", { class: "meta" }, label ? el("span", { class: "badge" }, label) : null, item.modality + " · " + item.cite),
    thumb,
    el("div", { class: "where" }, item.source),
    el("div", { class: "text" }, item.quote || item.text || ""));
  if (item.preview && (item.preview.includes("image=") || item.preview.includes("page=") ||
      (item.modality === "image" && !item.preview.includes("start=")))) {
    mediaUrl(item.preview).then((src) => thumb.append(el("img", { src, alt: "preview of " + item.source + " " + item.cite, loading: "lazy" })))
      .catch(() => { /* the card still shows the text */ });
  }
  return button;
}

function showCards(citations, hits) {
  const cards = $("cards");
  cards.replaceChildren();
  const seen = new Set();
  for (const c of citations) {
    seen.add(c.root + "\0" + c.source + "\0" + JSON.stringify(c.locator));
    cards.append(card(c, "[" + c.n + "]"));
  }
  for (const h of hits) {
    const key = h.root + "\0" + h.source + "\0" + JSON.stringify(h.locator);
    if (seen.has(key)) continue;
    seen.add(key);
    cards.append(card(h, ""));
  }
  $("evidence-title").hidden = cards.children.length === 0;
}

async function openEvidence(item) {
  const body = $("viewer-body");
  body.replaceChildren(el("p", {}, "Loading…"));
  $("viewer-title").textContent = item.source + " — " + item.cite;
  const dialog = $("viewer");
  if (!dialog.open) dialog.showModal();
  try {
    if (isTimed(item)) {
      const start = Number(item.locator.start) || 0;
      const src = await mediaUrl(item.file);
      const player = el(isAudio(item.source) ? "audio" : "video", { controls: "", preload: "auto", id: "player",
        "data-start": String(start) });
      player.src = src.startsWith("blob:") ? src : src + "#t=" + start;
      player.addEventListener("loadedmetadata", () => {
        if (Math.abs(player.currentTime - start) > 0.5) player.currentTime = start;
        player.play().catch(() => { /* autoplay may be blocked; the player is at the cited second */ });
      }, { once: true });
      body.replaceChildren(player, el("p", { class: "meta" }, "Playing from " + item.cite + "."));
      player.focus();
      return;
    }
    if (!item.preview) {
      body.replaceChildren(el("pre", {}, item.quote || item.text || ""), link(item));
      return;
    }
    const res = await api(item.preview);
    if ((res.headers.get("content-type") || "").startsWith("image/")) {
      const src = URL.createObjectURL(await res.blob());
      body.replaceChildren(el("img", { src, alt: item.source + " " + item.cite }), link(item));
      return;
    }
    const data = await res.json();
    const parts = [];
    if (data.kind === "rows") {
      for (const t of data.tables) {
        const head = el("tr", {}, ...t.headers.map((h) => el("th", {}, String(h))));
        const rows = t.rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {}, String(v)))));
        parts.push(el("h4", {}, t.name), el("table", {}, head, ...rows));
      }
      if (!data.tables.length) parts.push(el("p", {}, "No stored rows for this citation."));
    } else {
      if (data.note) parts.push(el("p", { class: "meta" }, data.note));
      parts.push(el("pre", {}, data.text || item.quote || item.text || ""));
    }
    body.replaceChildren(...parts, link(item));
  } catch (e) {
    body.replaceChildren(el("p", { class: "error" }, "Cannot show this evidence: " + e.message));
  }
}

function link(item) {
  const a = el("a", { href: item.file, target: "_blank", rel: "noopener" }, "Open the original file");
  if (token() && !isSigned(item.file)) {
    a.addEventListener("click", async (ev) => {
      ev.preventDefault();
      window.open(await mediaUrl(item.file), "_blank", "noopener");
    });
  }
  return el("p", {}, a);
}

async function ask(question) {
  const params = filterParams();
  params.set("q", question);
  $("answer-section").hidden = false;
  $("answer").className = "";
  $("answer").textContent = "";
  $("answer-checks").hidden = true;
  $("cards").replaceChildren();
  setStatus("Searching…");
  let text = "";
  try {
    const res = await api("/api/ask?" + params);
    await readEvents(res, (name, data) => {
      if (name === "token") {
        text += data.text;
        $("answer").textContent = text;
      } else if (name === "answer") {
        renderAnswer(data.answer, data.citations);
        $("answer").className = data.declined ? "declined" : "";
        showChecks(data);
        showCards(data.citations, data.hits);
        setStatus(data.citations.length + " citation(s), " + data.hits.length + " hit(s)");
      } else if (name === "error") {
        setStatus(data.detail, true);
      }
    });
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function refreshStatus() {
  try {
    const s = await (await api("/api/status")).json();
    let text = s.ready ? s.chunks + " chunks indexed" : s.detail;
    if (s.ready && s.sync) {
      const last = new Date(s.sync.last_sync * 1000).toLocaleTimeString();
      const failed = s.sync.failures.length ? ` · ${s.sync.failures.length} failed` : "";
      const pending = s.sync.pending.length ? ` · ${s.sync.pending.length} pending` : "";
      text += ` · last sync ${last}${pending}${failed}`;
    }
    setStatus(text, !s.ready);
  } catch (e) {
    setStatus(e.message, true);
  }
}

$("ask-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  if (q) ask(q);
});
document.addEventListener("keydown", (ev) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (ev.key === "/" && !typing) {
    ev.preventDefault();
    $("q").focus();
  }
});
$("viewer").addEventListener("close", () => {
  const player = document.getElementById("player");
  if (player) player.pause();
});
refreshStatus();
