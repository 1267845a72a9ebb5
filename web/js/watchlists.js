// The dashboard's watchlists panel: your watchlists and their latest matches, and a CSV form to add one.
//
// Talks to the API only through its documented routes (relative URLs): GET watchlists,
// GET watchlists/{id}/matches, POST watchlists (text/csv, ?name=). Polls every 10 s.
// For tests: window.watchlistsState = {polls, lists, matches, lastError}.

const $ = (id) => document.getElementById(id);
const POLL_MS = 10000;
const state = { polls: 0, lists: 0, matches: 0, lastError: null };
window.watchlistsState = state;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

async function getJson(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
  return answer.json();
}

function matchItem(m) {
  const where = m.separation_arcsec == null ? m.target : `${m.target} (${m.separation_arcsec.toFixed(1)}″)`;
  return el("li", {}, el("span", { class: "mono" }, m.object_id), " ", el("span", { class: "dim small" }, where), " ",
    el("span", { class: "dim small" }, m.matched_at.replace("T", " ").replace(/\.\d+Z?$|Z$/, "")));
}

async function refresh() {
  const list = $("watchlists");
  if (!list) return;
  try {
    const lists = await getJson("watchlists");
    const items = [];
    let total = 0;
    for (const wl of lists) {
      const matches = await getJson(`watchlists/${wl.id}/matches?limit=5`);
      total += matches.length;
      const what = `${wl.entries.length} position(s)` + (wl.regions.length ? `, ${wl.regions.length} region(s)` : "");
      items.push(el("li", { "data-watchlist": String(wl.id) },
        el("strong", {}, wl.name), " ", el("span", { class: "dim small" }, what),
        matches.length ? el("ul", { class: "rare-list" }, matches.map(matchItem)) : el("div", { class: "dim small" }, "no match yet")));
    }
    list.replaceChildren(...items);
    $("watchlists-empty").hidden = lists.length > 0;
    $("watchlists-count").textContent = String(lists.length);
    state.lists = lists.length;
    state.matches = total;
    state.lastError = null;
  } catch (err) {
    state.lastError = String(err);
  }
  state.polls += 1;
}

async function addFromCsv(event) {
  event.preventDefault();
  const note = $("watchlist-note");
  const answer = await fetch(`watchlists?name=${encodeURIComponent($("watchlist-name").value)}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "text/csv" },
    body: $("watchlist-csv").value,
  });
  const body = await answer.json().catch(() => null);
  note.textContent = answer.ok
    ? `added ${body.name} (${body.entries.length} positions)`
    : (typeof body?.detail === "string" ? body.detail : `HTTP ${answer.status}`);
  if (answer.ok) refresh();
}

function start() {
  const form = $("watchlist-form");
  if (form) form.addEventListener("submit", addFromCsv);
  refresh();
  setInterval(refresh, POLL_MS);
}

start();
