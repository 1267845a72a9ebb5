// The dashboard (/): live feed, object view, rare events, class registration, model, APOD, solar.
//
// Talks to the API only through its documented routes (relative URLs: works under a prefix):
//   auth/me, auth/logout, alerts, classes, model, predict, objects/{id}/lightcurve,
//   objects/{id}/similar, objects/{id}/cutouts, objects/{id}/crossmatches (objectview.js), web/config, web/apod, web/runs/{run}/evaluation|figures/{name}.
// The page itself is only served with a valid session (cosmic_ray/serve/web.py); a 401 from the API
// (session expired) sends the browser back to the login page.
//
// For tests: window.dashboardState = {ready, me, polls, alerts, objectId, objectReady, apod, solarFrames, followups}.
// Object view: #object=<id> in the URL (linkable).

import * as THREE from "three";
import * as astro from "./astro.js";
import { showObjectSky } from "./objectview.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
const BAND_COLORS = { g: "#4fe3a1", r: "#ff6b7d", i: "#ffcc66" };
const PLANET_COLORS = {
  mercury: 0xb9b2a8, venus: 0xead7a6, earth: 0x5b9cf0, mars: 0xd0653f,
  jupiter: 0xd9b58c, saturn: 0xe6d08f, uranus: 0xa4e6ee, neptune: 0x5f82f2,
};

const state = { ready: false, me: null, polls: 0, alerts: 0, objectId: null, objectReady: false, apod: null, solarFrames: 0, followups: 0 };
window.dashboardState = state;

// ---------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v; // CSSOM: a style attribute would be refused by the CSP
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

async function api(path, options = {}) {
  const answer = await fetch(path, { credentials: "same-origin", ...options });
  if (answer.status === 401 && !path.startsWith("auth/login")) {
    location.assign(`login?next=${encodeURIComponent("./" + location.hash)}`);
    throw new Error("session ended");
  }
  const type = answer.headers.get("content-type") || "";
  const body = type.includes("json") ? await answer.json().catch(() => null) : null;
  return { ok: answer.ok, status: answer.status, body };
}

const detailOf = (r) => (typeof r.body?.detail === "string" ? r.body.detail : JSON.stringify(r.body?.detail ?? `HTTP ${r.status}`));
const pct = (p) => `${(100 * p).toFixed(p >= 0.995 ? 0 : 1)}%`;
const fmtTime = (iso) => iso.replace("T", " ").replace(/\.\d+Z?$|Z$/, "");
const topProb = (a) => a.probabilities[a.class] ?? Math.max(...Object.values(a.probabilities));

// ---------------------------------------------------------------- header
async function loadMe() {
  const r = await api("auth/me");
  state.me = r.body;
  $("me").textContent = r.body.username;
  $("role").textContent = r.body.role;
  $("role").dataset.role = r.body.role;
  const canWrite = r.body.role === "astronomer" || r.body.role === "admin";
  $("register-note").textContent = canWrite ? "" : "needs the astronomer role: the server will refuse it";
  $("logout").addEventListener("click", async () => {
    await fetch("auth/logout", { method: "POST", credentials: "same-origin" });
    location.assign("login");
  });
}

async function loadConfig() {
  const r = await api("web/config");
  if (!r.ok) return;
  $("ray-link").href = r.body.ray_dashboard_url;
  $("mlflow-link").href = r.body.mlflow_ui_url;
  $("mlflow-link").title = `start it with: ${r.body.mlflow_ui_command}`;
}

// ---------------------------------------------------------------- live feed
let knownCandids = new Set();

function feedRow(a, fresh) {
  const p = topProb(a);
  return el("tr", { class: `${a.rare ? "rare" : ""} ${fresh ? "fresh" : ""}`, dataset: { candid: a.candid, object: a.object_id, classified: a.classified_at } },
    el("td", {}, el("a", { href: `#object=${encodeURIComponent(a.object_id)}`, class: "mono" }, a.object_id)),
    el("td", { class: "mono dim" }, fmtTime(a.classified_at)),
    el("td", {}, el("span", { class: "cls" }, a.class), a.novel ? el("span", { class: "tag novel", title: "fits no known class well" }, "novel") : ""),
    el("td", {}, el("div", { class: "pbar" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` })), el("span", { class: "mono small" }, pct(p))),
    el("td", { class: "mono small dim" }, a.open_set_score.toFixed(2)),
    el("td", {}, a.rare ? el("span", { class: "tag rare", title: "rare class" }, "★ rare") : ""),
  );
}

async function pollFeed() {
  const params = new URLSearchParams({ limit: "60" });
  const cls = $("class-filter").value;
  if (cls) params.set("class", cls);
  if ($("rare-only").checked) params.set("rare", "true");
  try {
    const r = await api(`alerts?${params}`);
    if (!r.ok) throw new Error(detailOf(r));
    const first = state.polls === 0;
    const rows = r.body.map((a) => feedRow(a, !first && !knownCandids.has(a.candid)));
    r.body.forEach((a) => knownCandids.add(a.candid));
    $("feed").replaceChildren(...rows);
    $("feed-empty").hidden = r.body.length > 0;
    state.alerts = r.body.length;
    state.polls += 1;
    $("feed-status").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    $("live-dot").classList.remove("down");
  } catch (err) {
    $("feed-status").textContent = `feed unavailable: ${err.message}`;
    $("live-dot").classList.add("down");
  }
}

async function pollRare() {
  const r = await api("alerts?rare=true&limit=8");
  if (!r.ok) return;
  $("rare-count").textContent = r.body.length;
  $("rare-list").replaceChildren(
    ...(r.body.length
      ? r.body.map((a) => el("li", {},
          el("a", { href: `#object=${encodeURIComponent(a.object_id)}`, class: "mono" }, a.object_id),
          el("span", { class: "tag rare" }, a.class), el("span", { class: "dim small mono" }, `${pct(topProb(a))} · ${fmtTime(a.classified_at).slice(5, 16)}`)))
      : [el("li", { class: "dim" }, "No rare event yet (SLSN, TDE, SN Ibn/Icn…).")]),
  );
}

// the follow-up list: live objects ranked by the probability of one class (GET /candidates)
async function pollFollowup() {
  const cls = $("followup-class").value;
  if (!cls) return;
  const r = await api(`candidates?${new URLSearchParams({ class: cls, limit: "6" })}`);
  if (!r.ok || $("followup-class").value !== cls) return;
  $("followup-list").replaceChildren(
    ...(r.body.length
      ? r.body.map((a) => el("li", { dataset: { object: a.object_id } },
          el("a", { href: `#object=${encodeURIComponent(a.object_id)}`, class: "mono" }, a.object_id),
          el("span", { class: "dim small" }, a.class),
          el("span", { class: "mono small", title: `probability of ${cls}` }, pct(a.probabilities[cls] ?? 0))))
      : [el("li", { class: "dim" }, `No live object scored for ${cls} yet.`)]),
  );
  state.followups += 1;
}

function startFeed() {
  $("class-filter").addEventListener("change", () => { state.polls = 0; pollFeed(); });
  $("rare-only").addEventListener("change", () => { state.polls = 0; pollFeed(); });
  $("followup-class").addEventListener("change", () => { state.followups = 0; pollFollowup(); });
  const tick = async () => {
    await Promise.all([pollFeed(), pollRare(), pollFollowup()]);
    setTimeout(tick, POLL_MS);
  };
  tick();
}

// ---------------------------------------------------------------- classes
async function loadClasses() {
  const r = await api("classes");
  if (!r.ok) return;
  const select = $("class-filter");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "All classes"), ...r.body.map((c) => el("option", { value: c.name }, c.name)));
  select.value = chosen;
  const follow = $("followup-class");
  const ranked = follow.value || (r.body.some((c) => c.name === "SLSN-I") ? "SLSN-I" : (r.body[0] || {}).name || "");
  follow.replaceChildren(...r.body.map((c) => el("option", { value: c.name }, c.name)));
  follow.value = ranked;
  $("class-chips").replaceChildren(...r.body.map((c) =>
    el("span", { class: `chip ${c.source}`, title: c.source === "registered" ? `registered by ${c.created_by} from ${c.support_objects.length} objects` : "trained class" },
      c.name, c.source === "registered" ? el("small", {}, ` K=${c.support_objects.length}`) : "")));
}

function startRegister() {
  $("register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("class-name").value.trim();
    const ids = $("class-objects").value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
    const msg = $("register-message");
    if (!name || !ids.length) {
      msg.textContent = "Give a name and at least one object id.";
      msg.className = "message error";
      return;
    }
    $("register").disabled = true;
    msg.textContent = "Registering…";
    msg.className = "message";
    try {
      const r = await api("classes", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name, object_ids: ids }) });
      if (r.status === 201) {
        msg.textContent = `Registered “${r.body.name}” from ${r.body.support_objects.length} objects; live on every replica within seconds.`;
        msg.className = "message ok";
        msg.dataset.status = "201";
        loadClasses();
        loadModel();
      } else {
        msg.textContent = `Refused (${r.status}): ${detailOf(r)}`;
        msg.className = "message error";
        msg.dataset.status = String(r.status);
      }
    } finally {
      $("register").disabled = false;
    }
  });
}

// ---------------------------------------------------------------- model
async function loadModel() {
  const r = await api("model");
  if (!r.ok) {
    $("model-facts").replaceChildren(el("dt", {}, "status"), el("dd", {}, detailOf(r)));
    return;
  }
  const m = r.body;
  $("model-version").textContent = `v${m.version}`;
  const meta = m.meta || {};
  const facts = [
    ["name", m.name],
    ["trained", meta.trained_at || m.trained_at || "—"],
    ["data", `${meta.objects ?? "?"} objects · ${meta.dataset_rows ?? "?"} lake rows`],
    ["classes", `${m.classes.length} (${m.registered_classes.length} registered at runtime)`],
    ["run", m.run_id],
  ];
  if (m.last_reload_error) facts.push(["reload error", m.last_reload_error]);
  $("model-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: k === "run" ? "mono small" : "" }, v)]));
  const ev = await api(`web/runs/${encodeURIComponent(m.run_id)}/evaluation`);
  if (!ev.ok) {
    $("model-metrics").replaceChildren(el("p", { class: "dim small" }, `Evaluation unavailable: ${detailOf(ev)}`));
    return;
  }
  const shown = ["balanced_accuracy", "macro_f1", "accuracy", "chance_accuracy"].filter((k) => k in ev.body.metrics);
  $("model-metrics").replaceChildren(...shown.map((k) => {
    const v = ev.body.metrics[k];
    return el("div", { class: "metric" }, el("span", { class: "dim small" }, k.replace(/_/g, " ")),
      el("div", { class: "pbar wide" }, el("span", { style: `width:${(100 * v).toFixed(1)}%`, class: k === "chance_accuracy" ? "chance" : "" })),
      el("b", { class: "mono" }, v.toFixed(3)));
  }));
  $("model-figures").replaceChildren(...ev.body.figures.map((f) =>
    el("a", { href: `web/runs/${m.run_id}/figures/${f}`, target: "_blank", title: f },
      el("img", { src: `web/runs/${m.run_id}/figures/${f}`, alt: f.replace(/_/g, " ").replace(".png", ""), loading: "lazy" }))));
}

// ---------------------------------------------------------------- APOD
// Links from NASA's answer are used only when they are https: URLs (never javascript:, data: or http:).
function httpsOnly(url) {
  if (typeof url !== "string") return null;
  try {
    const u = new URL(url);
    return u.protocol === "https:" && u.host ? u.href : null;
  } catch {
    return null;
  }
}

async function loadApod() {
  const box = $("apod");
  const r = await api("web/apod");
  state.apod = r.body;
  const image = r.ok && r.body.available ? httpsOnly(r.body.image_url) : null;
  if (image) {
    box.dataset.state = "available";
    box.replaceChildren(
      el("a", { href: httpsOnly(r.body.page_url) || image, target: "_blank", rel: "noopener noreferrer" }, el("img", { src: image, alt: r.body.title || "APOD" })),
      el("p", {}, el("b", {}, r.body.title || ""), el("span", { class: "dim small" }, ` ${r.body.date || ""}${r.body.copyright ? " · © " + r.body.copyright : ""}`)),
    );
  } else {
    box.dataset.state = "unavailable";
    box.replaceChildren(el("div", { class: "unavailable" },
      el("b", {}, "Unavailable"),
      el("p", { class: "dim small" }, r.body?.reason || detailOf(r))));
  }
}

// ---------------------------------------------------------------- object view
function lightCurveSvg(points) {
  const W = 600, H = 270, L = 48, R = 12, T = 12, B = 34;
  const pts = points.filter((p) => p.mag != null && Number.isFinite(p.mag));
  const svg = (tag, attrs = {}) => {
    const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return n;
  };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "light curve" });
  if (!pts.length) return root;
  const t0 = Math.floor(Math.min(...pts.map((p) => p.mjd)));
  const xs = pts.map((p) => p.mjd - t0);
  const lo = Math.min(...pts.map((p) => p.mag - (p.magerr || 0)));
  const hi = Math.max(...pts.map((p) => p.mag + (p.magerr || 0)));
  const pad = Math.max(0.2, (hi - lo) * 0.08);
  const [yTop, yBot] = [lo - pad, hi + pad]; // brighter (smaller mag) at the top
  const xMax = Math.max(1, ...xs) * 1.03;
  const X = (d) => L + (d / xMax) * (W - L - R);
  const Y = (m) => T + ((m - yTop) / (yBot - yTop)) * (H - T - B);
  const axes = svg("g", { class: "axes" });
  for (let i = 0; i <= 5; i++) {
    const m = yTop + ((yBot - yTop) * i) / 5;
    axes.append(svg("line", { x1: L, x2: W - R, y1: Y(m), y2: Y(m), class: "grid" }));
    const t = svg("text", { x: L - 6, y: Y(m) + 4, "text-anchor": "end" }); t.textContent = m.toFixed(1); axes.append(t);
  }
  for (let i = 0; i <= 6; i++) {
    const d = (xMax * i) / 6;
    axes.append(svg("line", { x1: X(d), x2: X(d), y1: T, y2: H - B, class: "grid" }));
    const t = svg("text", { x: X(d), y: H - B + 15, "text-anchor": "middle" }); t.textContent = d.toFixed(0); axes.append(t);
  }
  const xl = svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "label" }); xl.textContent = `days since MJD ${t0}`;
  const yl = svg("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle", class: "label" }); yl.textContent = "mag (AB)";
  axes.append(xl, yl);
  root.append(axes);
  const bands = [...new Set(pts.map((p) => p.band))].sort();
  for (const band of bands) {
    const color = BAND_COLORS[band] || "#9fb4ff";
    const g = svg("g", { class: `band band-${band}` });
    for (const p of pts.filter((q) => q.band === band)) {
      const x = X(p.mjd - t0), y = Y(p.mag);
      if (p.is_limit) {
        g.append(svg("path", { d: `M${x - 4},${y - 3} L${x + 4},${y - 3} L${x},${y + 4} Z`, fill: "none", stroke: color, "stroke-opacity": 0.55, class: "limit" }));
      } else {
        const e = p.magerr || 0;
        g.append(svg("line", { x1: x, x2: x, y1: Y(p.mag - e), y2: Y(p.mag + e), stroke: color, "stroke-opacity": 0.8 }));
        g.append(svg("circle", { cx: x, cy: y, r: 3.2, fill: color, class: "det" }));
      }
    }
    root.append(g);
  }
  bands.forEach((band, i) => {
    const x = W - R - 60 * (bands.length - i);
    root.append(svg("circle", { cx: x + 8, cy: T + 10, r: 4, fill: BAND_COLORS[band] || "#9fb4ff" }));
    const t = svg("text", { x: x + 16, y: T + 14, class: "legend" }); t.textContent = band; root.append(t);
  });
  return root;
}

function neighbourItems(list) {
  return list.length
    ? list.map((n) => el("li", {}, el("a", { href: `#object=${encodeURIComponent(n.object_id)}`, class: "mono" }, n.object_id),
        el("span", { class: "cls" }, n.label || "unlabelled"), el("span", { class: "dim small mono" }, `d=${n.distance.toFixed(2)}`)))
    : [el("li", { class: "dim" }, "none")];
}

async function openObject(objectId) {
  state.objectId = objectId;
  state.objectReady = false;
  $("object-view").hidden = false;
  $("object-title").textContent = objectId;
  $("object-label").textContent = "";
  $("object-message").textContent = "";
  $("similar").replaceChildren();
  ["lightcurve", "probabilities", "neighbours"].forEach((id) => $(id).replaceChildren(el("p", { class: "dim" }, "Loading…")));
  showObjectSky($("object-sky"), objectId); // stamps, cross-matches, links out (objectview.js)
  const lc = await api(`objects/${encodeURIComponent(objectId)}/lightcurve`);
  if (state.objectId !== objectId) return;
  if (!lc.ok) {
    $("lightcurve").replaceChildren(el("p", { class: "dim" }, detailOf(lc)));
    $("probabilities").replaceChildren();
    $("neighbours").replaceChildren();
    state.objectReady = true;
    return;
  }
  $("object-label").textContent = lc.body.label ? `spectroscopic: ${lc.body.label}` : lc.body.sources.join(", ");
  $("lightcurve").replaceChildren(lightCurveSvg(lc.body.points));
  const points = lc.body.points.filter((p) => p.mag != null).map((p) => ({ mjd: p.mjd, band: p.band, mag: p.mag, magerr: p.magerr || 0, is_limit: p.is_limit }));
  const pred = await api("predict", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ lightcurve: { object_id: objectId, points } }) });
  if (state.objectId !== objectId) return;
  if (pred.ok) {
    const probs = Object.entries(pred.body.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 8);
    $("probabilities").replaceChildren(...probs.map(([name, p]) =>
      el("div", { class: `bar ${name === pred.body.class ? "top" : ""}` }, el("span", { class: "name" }, name),
        el("div", { class: "pbar wide" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` })), el("span", { class: "mono small" }, pct(p)))));
    $("open-set").textContent = `open-set score ${pred.body.open_set_score.toFixed(2)}${pred.body.novel ? " · novel: fits no known class" : ""} · model v${pred.body.model_version}`;
    $("neighbours").replaceChildren(...neighbourItems(pred.body.neighbours));
  } else {
    $("probabilities").replaceChildren(el("p", { class: "dim" }, detailOf(pred)));
    $("neighbours").replaceChildren();
  }
  state.objectReady = true;
}

async function findSimilar() {
  const id = state.objectId;
  $("similar").replaceChildren(el("li", { class: "dim" }, "Searching…"));
  const r = await api(`objects/${encodeURIComponent(id)}/similar?k=6`);
  if (state.objectId !== id) return;
  $("similar").replaceChildren(...(r.ok ? neighbourItems(r.body.neighbours) : [el("li", { class: "dim" }, detailOf(r))]));
}

function route() {
  const m = location.hash.match(/^#object=(.+)$/);
  if (m) openObject(decodeURIComponent(m[1]));
  else { $("object-view").hidden = true; state.objectId = null; }
}

function startObjectView() {
  addEventListener("hashchange", route);
  $("object-close").addEventListener("click", () => { history.pushState(null, "", location.pathname + location.search); route(); });
  $("object-view").addEventListener("click", (e) => { if (e.target === $("object-view")) $("object-close").click(); });
  addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("object-view").hidden) $("object-close").click(); });
  $("find-similar").addEventListener("click", findSimilar);
  route();
}

// ---------------------------------------------------------------- mini solar system
function startSolar() {
  const host = $("mini-solar");
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, alpha: true });
  } catch {
    host.replaceChildren(el("p", { class: "dim" }, "WebGL unavailable"));
    return;
  }
  renderer.setPixelRatio(Math.min(devicePixelRatio, 2));
  host.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(40, 1, 0.1, 100);
  camera.position.set(0, 7.5, 7.5);
  camera.lookAt(0, 0, 0);
  scene.add(new THREE.Mesh(new THREE.SphereGeometry(0.28, 24, 16), new THREE.MeshBasicMaterial({ color: 0xffc46b })));
  const scale = (r) => Math.sqrt(r) * 1.55; // compressed distances, as /solar does by default
  const toScene = (v) => { const r = Math.hypot(v.x, v.y, v.z); const k = scale(r) / r; return new THREE.Vector3(v.x * k, v.z * k, -v.y * k); };
  const now = Date.now();
  const bodies = {};
  for (const name of astro.PLANETS) {
    const orbit = astro.orbitPoints(name, now, 128).map(toScene);
    scene.add(new THREE.LineLoop(new THREE.BufferGeometry().setFromPoints(orbit),
      new THREE.LineBasicMaterial({ color: 0x4a5a8a, transparent: true, opacity: 0.6 })));
    const size = name === "jupiter" || name === "saturn" ? 0.17 : 0.1;
    const mesh = new THREE.Mesh(new THREE.SphereGeometry(size, 16, 12), new THREE.MeshBasicMaterial({ color: PLANET_COLORS[name] }));
    scene.add(mesh);
    bodies[name] = mesh;
  }
  const resize = () => {
    const w = host.clientWidth, h = host.clientHeight;
    renderer.setSize(w, h);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  };
  addEventListener("resize", resize);
  resize();
  const start = performance.now();
  const frame = (t) => {
    // 20 days of orbital motion per second, starting now
    const ms = now + ((t - start) / 1000) * 20 * astro.MS_PER_DAY;
    const pos = astro.planetPositions(ms);
    for (const [name, mesh] of Object.entries(bodies)) mesh.position.copy(toScene(pos[name]));
    scene.rotation.y = (t - start) * 0.00003;
    renderer.render(scene, camera);
    state.solarFrames += 1;
    if (state.solarFrames % 30 === 1) $("mini-solar-caption").textContent = `${new Date(ms).toISOString().slice(0, 10)} · JD ${astro.julianDate(ms).toFixed(2)} · √r distances, 20 days/s`;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

// ---------------------------------------------------------------- start
async function main() {
  await loadMe();
  startObjectView();
  startRegister();
  startSolar();
  await Promise.all([loadConfig(), loadClasses(), loadApod()]);
  startFeed();
  loadModel();
  state.ready = true;
}
main().catch((err) => console.error(err));
