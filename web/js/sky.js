// The dashboard's sky: a search box (object id, the beginning of one, or "ra dec [radius]") and a
// sky view (Mollweide, equatorial, RA increasing to the left) of the object table's latest objects,
// the live alerts' objects ringed and the rare ones highlighted.
//
// Talks to the API only through its documented routes (relative URLs): objects (cone search and
// listing), objects/{id} (summary), alerts (the live feed). An object opens in the dashboard's
// object view through the URL (#object=<id>), as the feed's links do.
//
// For tests: window.skyState = {ready, draws, points, live, rare, searches, results, lastSearch, error}.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 5000;
const LISTING = 1000; // latest objects drawn
const DEFAULT_RADIUS_DEG = 1 / 60; // "ra dec" without a radius: one arcminute

const state = { ready: false, draws: 0, points: 0, live: 0, rare: 0, searches: 0, results: 0, lastSearch: null, error: null };
window.skyState = state;

let objects = []; // the listing drawn (object summaries)
let found = new Set(); // ids of the last search's results (highlighted)

async function api(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  if (answer.status === 401) {
    location.assign(`login?next=${encodeURIComponent("./" + location.hash)}`);
    throw new Error("session ended");
  }
  const type = answer.headers.get("content-type") || "";
  const body = type.includes("json") ? await answer.json().catch(() => null) : null;
  return { ok: answer.ok, status: answer.status, body };
}

const detailOf = (r) => (typeof r.body?.detail === "string" ? r.body.detail : `HTTP ${r.status}`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// ---------------------------------------------------------------- the projection
const W = 720, H = 360; // viewBox: the Mollweide ellipse is 2:1
const RX = 350, RY = 175; // ellipse radii in the viewBox

/** Mollweide x, y (viewBox) of RA/Dec in degrees; RA 180 at the centre, increasing to the left. */
export function mollweide(ra, dec) {
  const lon = ((((180 - ra) % 360) + 540) % 360) - 180; // -180..180, RA grows leftwards
  const phi = (dec * Math.PI) / 180;
  let theta = phi;
  if (Math.abs(dec) < 90) {
    for (let i = 0; i < 20; i += 1) { // Newton: 2θ + sin 2θ = π sin φ
      const f = 2 * theta + Math.sin(2 * theta) - Math.PI * Math.sin(phi);
      const step = f / (2 + 2 * Math.cos(2 * theta));
      theta -= step;
      if (Math.abs(step) < 1e-9) break;
    }
  }
  const x = (lon / 180) * Math.cos(theta);
  const y = Math.sin(theta);
  return [W / 2 + x * RX, H / 2 - y * RY];
}

// the Galactic plane (b = 0) in equatorial coordinates (ICRS <- Galactic rotation, J2000)
const GAL_TO_EQ = [
  [-0.0548755604, 0.4941094279, -0.867666149],
  [-0.8734370902, -0.4448296300, -0.1980763734],
  [-0.4838350155, 0.7469822445, 0.4559837762],
];

function galacticPlane() {
  const pts = [];
  for (let l = 0; l <= 360; l += 2) {
    const g = [Math.cos((l * Math.PI) / 180), Math.sin((l * Math.PI) / 180), 0];
    const e = GAL_TO_EQ.map((row) => row[0] * g[0] + row[1] * g[1] + row[2] * g[2]);
    const ra = ((Math.atan2(e[1], e[0]) * 180) / Math.PI + 360) % 360;
    const dec = (Math.asin(Math.max(-1, Math.min(1, e[2]))) * 180) / Math.PI;
    pts.push([ra, dec]);
  }
  return pts;
}

/** A polyline path through RA/Dec points, broken where it crosses the map's edge (RA 0h = 24h). */
function pathOf(points) {
  let d = "";
  let prev = null;
  for (const [ra, dec] of points) {
    const [x, y] = mollweide(ra, dec);
    const side = ((((180 - ra) % 360) + 540) % 360) - 180; // the longitude drawn: -180..180
    d += `${prev !== null && Math.abs(side - prev) < 180 ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    prev = side;
  }
  return d;
}

function drawFrame(map) {
  map.append(svg("ellipse", { cx: W / 2, cy: H / 2, rx: RX, ry: RY, class: "sky-outline" }));
  for (let dec = -60; dec <= 60; dec += 30) {
    const pts = [];
    for (let ra = 0; ra <= 360; ra += 5) pts.push([ra === 360 ? 359.999 : ra, dec]);
    map.append(svg("path", { d: pathOf(pts), class: "sky-grid" }));
  }
  for (let ra = 0; ra < 360; ra += 60) {
    const pts = [];
    for (let dec = -90; dec <= 90; dec += 5) pts.push([ra === 180 ? 180.0001 : ra, dec]);
    map.append(svg("path", { d: pathOf(pts), class: "sky-grid" }));
    const [x, y] = mollweide(ra, 0);
    const label = svg("text", { x: x + 3, y: y - 3, class: "sky-label" });
    label.textContent = `${ra / 15}h`;
    map.append(label);
  }
  map.append(svg("path", { d: pathOf(galacticPlane()), class: "sky-galactic" }));
}

function draw(liveIds) {
  const map = $("sky-map");
  map.replaceChildren();
  drawFrame(map);
  let points = 0, live = 0, rare = 0;
  // rare and searched ones last, so they are drawn on top
  const order = [...objects].sort((a, b) => Number(!!a.rare || found.has(a.object_id)) - Number(!!b.rare || found.has(b.object_id)));
  for (const o of order) {
    if (o.ra == null || o.dec == null) continue;
    const [x, y] = mollweide(o.ra, o.dec);
    const isLive = liveIds.has(o.object_id);
    const classes = ["sky-point", o.rare ? "rare" : "", isLive ? "live" : "", found.has(o.object_id) ? "found" : ""].filter(Boolean);
    const dot = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: o.rare ? 4.5 : isLive ? 3.5 : 2.2, class: classes.join(" ") });
    dot.dataset.object = o.object_id;
    const title = svg("title");
    title.textContent = `${o.object_id}${o.class ? ` · ${o.class}` : ""}${o.rare ? " · rare" : ""} · RA ${o.ra.toFixed(4)} Dec ${o.dec.toFixed(4)}`;
    dot.append(title);
    dot.addEventListener("click", () => { location.hash = `object=${encodeURIComponent(o.object_id)}`; });
    map.append(dot);
    points += 1;
    live += isLive ? 1 : 0;
    rare += o.rare ? 1 : 0;
  }
  Object.assign(state, { points, live, rare, draws: state.draws + 1 });
  $("sky-caption").textContent = `${points} objects · ${live} with live alerts · ${rare} rare · Mollweide, equatorial, RA 12h at the centre increasing to the left, Galactic plane dashed`;
}

async function refresh() {
  try {
    const [listing, alerts] = await Promise.all([api(`objects?limit=${LISTING}`), api("alerts?limit=100")]);
    if (!listing.ok) throw new Error(detailOf(listing));
    const known = new Map(listing.body.objects.map((o) => [o.object_id, o]));
    const liveIds = new Set(alerts.ok ? alerts.body.map((a) => a.object_id) : []);
    for (const a of alerts.ok ? alerts.body : []) { // a live alert says rare before the table's row is read again
      const o = known.get(a.object_id);
      if (o && a.rare) o.rare = true;
    }
    for (const o of searchedObjects) if (!known.has(o.object_id)) known.set(o.object_id, o);
    objects = [...known.values()];
    draw(liveIds);
    state.error = null;
  } catch (err) {
    state.error = err.message;
    $("sky-caption").textContent = `sky view unavailable: ${err.message}`;
  }
}

// ---------------------------------------------------------------- the search box
let searchedObjects = []; // results of the last search (drawn even when not among the latest)

const UNITS = { '"': 1 / 3600, "″": 1 / 3600, arcsec: 1 / 3600, "'": 1 / 60, "′": 1 / 60, arcmin: 1 / 60, d: 1, deg: 1, "°": 1, "": 1 };
const CONE = /^\s*([+-]?\d+(?:\.\d*)?)[\s,]+([+-]?\d+(?:\.\d*)?)(?:[\s,]+(\d+(?:\.\d*)?)\s*(″|"|arcsec|′|'|arcmin|°|deg|d)?)?\s*$/i;

/** "ra dec [radius[unit]]" (degrees; radius units ", ', deg) -> {ra, dec, radius} in degrees, or null. */
export function parseCone(text) {
  const m = CONE.exec(text);
  if (!m) return null;
  const radius = m[3] === undefined ? DEFAULT_RADIUS_DEG : Number(m[3]) * UNITS[(m[4] || "").toLowerCase()];
  return { ra: Number(m[1]), dec: Number(m[2]), radius };
}

function resultItem(o) {
  const extra = [o.class ?? "unclassified", o.distance_arcsec != null ? `${o.distance_arcsec.toFixed(1)}″` : null,
    o.last_mjd != null ? `last MJD ${o.last_mjd.toFixed(2)}` : null].filter(Boolean).join(" · ");
  return el("li", { class: o.rare ? "rare" : "" },
    el("a", { href: `#object=${encodeURIComponent(o.object_id)}`, class: "mono" }, o.object_id),
    o.rare ? el("span", { class: "tag rare" }, "★ rare") : "",
    el("span", { class: "dim small mono" }, extra));
}

function showResults(list, message) {
  searchedObjects = list;
  found = new Set(list.map((o) => o.object_id));
  $("sky-results").replaceChildren(...list.map(resultItem));
  $("sky-message").textContent = message;
  $("sky-message").className = "message";
  state.results = list.length;
  state.searches += 1;
  refresh();
}

function showError(message) {
  $("sky-message").textContent = message;
  $("sky-message").className = "message error";
  $("sky-results").replaceChildren();
  state.results = 0;
  state.searches += 1;
}

async function search(text) {
  text = text.trim();
  state.lastSearch = text;
  if (!text) return;
  const cone = parseCone(text);
  if (cone) {
    const params = new URLSearchParams({ ra: String(cone.ra), dec: String(cone.dec), radius: String(cone.radius), limit: "100" });
    const r = await api(`objects?${params}`);
    if (!r.ok) return showError(detailOf(r));
    const more = r.body.total > r.body.objects.length ? ` (first ${r.body.objects.length})` : "";
    return showResults(r.body.objects, `${r.body.total} object(s) within ${(cone.radius * 3600).toFixed(1)}″ of ${cone.ra}, ${cone.dec}${more}`);
  }
  const one = await api(`objects/${encodeURIComponent(text)}`);
  if (one.ok) {
    showResults([one.body], "");
    location.hash = `object=${encodeURIComponent(one.body.object_id)}`;
    return;
  }
  const r = await api(`objects?${new URLSearchParams({ q: text, limit: "20" })}`);
  if (!r.ok) return showError(detailOf(r));
  if (!r.body.objects.length) return showError(`no object ${text}: give an object id, its beginning, or "ra dec radius" (degrees)`);
  showResults(r.body.objects, `${r.body.total} object(s) whose id starts with ${text}`);
}

function start() {
  $("sky-search").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("sky-query").value).catch((err) => showError(err.message));
  });
  refresh().finally(() => { state.ready = true; });
  setInterval(refresh, POLL_MS);
}

start();
