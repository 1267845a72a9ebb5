// Expert labels on the object view (/#object=<id>): the object's answers (who, when, what) and a
// form to add one (astronomer/admin: a true class, "interesting" or "bogus", with a note).
//
// Talks to the API only through its documented routes: GET/POST objects/{id}/labels, classes.
// The answers feed the next retrain (class, bogus) and the night's anomaly ranking (all kinds).
// For tests: window.labelsState = {objectId, shown, added, error}.

const $ = (id) => document.getElementById(id);
const state = { objectId: null, shown: 0, added: 0, error: null };
window.labelsState = state;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

const detailOf = (body, status) =>
  typeof body?.detail === "string" ? body.detail
    : Array.isArray(body?.detail) ? body.detail.map((d) => d.msg).join("; ")
      : `HTTP ${status}`;

async function call(path, options = {}) {
  const answer = await fetch(path, { credentials: "same-origin", ...options });
  const body = (answer.headers.get("content-type") || "").includes("json") ? await answer.json().catch(() => null) : null;
  return { ok: answer.ok, status: answer.status, body };
}

function item(label) {
  const what = label.kind === "class" ? `class: ${label.class}` : label.kind;
  return el("li", {},
    el("span", { class: `cls label-${label.kind}` }, what),
    el("span", { class: "dim small" }, ` ${label.user ?? "someone"} · ${label.created_at.replace("T", " ").replace(/\.\d+Z?$|Z$/, "")}`),
    label.note ? el("div", { class: "small" }, label.note) : "");
}

async function show(objectId) {
  const list = $("labels-list");
  list.replaceChildren(el("li", { class: "dim" }, "Loading…"));
  const r = await call(`objects/${encodeURIComponent(objectId)}/labels`);
  if (state.objectId !== objectId) return;
  const labels = r.ok ? r.body : [];
  list.replaceChildren(...(labels.length ? labels.map(item) : [el("li", { class: "dim" }, r.ok ? "no expert label yet" : detailOf(r.body, r.status))]));
  state.shown = labels.length;
}

async function fillClasses() {
  const r = await call("classes");
  const names = r.ok ? [...new Set(r.body.map((c) => c.name))] : [];
  for (const n of ["SN Ia", "SN II", "SN Ibc", "SN IIn", "SLSN-I", "SLSN-II", "TDE", "nova", "Other"]) if (!names.includes(n)) names.push(n);
  $("label-class").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
}

async function submit(event) {
  event.preventDefault();
  const objectId = state.objectId;
  if (!objectId) return;
  const kind = $("label-kind").value;
  const body = { kind, note: $("label-note").value };
  if (kind === "class") body.class = $("label-class").value;
  const r = await call(`objects/${encodeURIComponent(objectId)}/labels`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  state.error = r.ok ? null : detailOf(r.body, r.status);
  $("label-message").textContent = r.ok ? "Saved: the next retrain and tonight's anomaly ranking use it." : state.error;
  if (r.ok) {
    state.added += 1;
    $("label-note").value = "";
    await show(objectId);
  }
}

function route() {
  const m = location.hash.match(/^#object=(.+)$/);
  state.objectId = m ? decodeURIComponent(m[1]) : null;
  $("label-message").textContent = "";
  if (state.objectId) show(state.objectId);
}

function start() {
  if (!$("labels-list")) return;
  $("label-kind").addEventListener("change", () => { $("label-class").disabled = $("label-kind").value !== "class"; });
  $("label-form").addEventListener("submit", submit);
  addEventListener("hashchange", route);
  fillClasses();
  route();
}

start();
