// The object view's sky part: the chosen alert's three stamps, the cross-matches and the links out.
//
// Routes: objects/{id}/cutouts/alerts (the alerts with stamps), objects/{id}/cutouts?candid=&kind=
// (one PNG per stamp; the session cookie goes with the <img> request: same origin), and
// objects/{id}/crossmatches (the alert's own PS1/Gaia/solar-system matches, catalogue objects
// nearby with separations, the TNS name, links out built by the server from the position and
// names: the page only shows them, nothing is fetched from those services).
//
// Candids are handled as text (candid_str): they exceed 2**53, and a JS number would lose their last digits.
//
// For tests: window.objectViewState = {objectId, candid (text), stamps (loaded images), crossmatches (rows), links}.

const KINDS = ["science", "template", "difference"];
const state = { objectId: null, candid: null, stamps: 0, crossmatches: -1, links: 0 };
window.objectViewState = state;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

async function getJson(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  const body = await answer.json().catch(() => null);
  const detail = typeof body?.detail === "string" ? body.detail : `HTTP ${answer.status}`;
  return { ok: answer.ok, status: answer.status, body, detail };
}

const num = (v, digits = 2) => (v == null ? "—" : Number(v).toFixed(digits));
const objectPath = (id) => `objects/${encodeURIComponent(id)}`;

function showStamps(host, objectId, candid) {
  state.candid = candid;
  state.stamps = 0;
  const figures = KINDS.map((kind) => {
    const img = el("img", {
      src: `${objectPath(objectId)}/cutouts?${new URLSearchParams({ candid, kind })}`,
      alt: `${kind} stamp of alert ${candid}`,
      width: "126",
      height: "126",
      dataset: { kind },
    });
    img.addEventListener("load", () => { if (state.objectId === objectId && state.candid === candid) state.stamps += 1; });
    img.addEventListener("error", () => img.replaceWith(el("span", { class: "dim small" }, `${kind}: unavailable`)));
    return el("figure", { class: "stamp" }, img, el("figcaption", { class: "dim small" }, kind));
  });
  host.replaceChildren(...figures);
}

async function loadCutouts(box, objectId) {
  box.replaceChildren(el("p", { class: "dim" }, "Loading stamps…"));
  const r = await getJson(`${objectPath(objectId)}/cutouts/alerts`);
  if (state.objectId !== objectId) return;
  if (!r.ok || r.body.latest_str == null) {
    box.replaceChildren(el("p", { class: "dim small" }, r.ok ? "No stamps stored for this object." : r.detail));
    return;
  }
  const withStamps = r.body.alerts.filter((a) => a.kinds.length);
  const select = el("select", { id: "stamp-alert", "aria-label": "Alert whose stamps are shown" },
    ...withStamps.slice().reverse().map((a) => el("option", { value: a.candid_str }, `${a.candid_str} · MJD ${num(a.mjd, 3)}`)));
  select.value = r.body.latest_str;
  const stamps = el("div", { id: "stamps", class: "stamps" });
  select.addEventListener("change", () => showStamps(stamps, objectId, select.value));
  box.replaceChildren(el("div", { class: "row" }, el("span", { class: "dim small" }, "alert"), select), stamps);
  showStamps(stamps, objectId, r.body.latest_str);
}

function alertRows(alert) {
  const rows = [];
  if (alert.ps1) rows.push(["PS1 (nearest)", `${num(alert.ps1.distance_arcsec)}″`, `r=${num(alert.ps1.rmag)} · star/galaxy ${num(alert.ps1.sgscore)}`]);
  if (alert.gaia) rows.push(["Gaia (nearest)", `${num(alert.gaia.distance_arcsec)}″`, `G=${num(alert.gaia.gmag)}`]);
  if (alert.solar_system) rows.push([`Solar system: ${alert.solar_system.name ?? "?"}`, `${num(alert.solar_system.distance_arcsec)}″`, `V=${num(alert.solar_system.vmag)}`]);
  return rows;
}

async function loadCrossmatches(table, links, objectId) {
  table.replaceChildren(el("tr", {}, el("td", { class: "dim" }, "Loading…")));
  links.replaceChildren();
  const r = await getJson(`${objectPath(objectId)}/crossmatches`);
  if (state.objectId !== objectId) return;
  if (!r.ok) {
    table.replaceChildren(el("tr", {}, el("td", { class: "dim small" }, r.detail)));
    state.crossmatches = 0;
    return;
  }
  const m = r.body;
  const rows = [
    ...alertRows(m.alert || {}).map(([what, sep, note]) => el("tr", { class: "from-alert" }, el("td", {}, what), el("td", { class: "mono" }, sep), el("td", { class: "dim small" }, note))),
    ...m.matches.filter((x) => !(x.catalogue === "BTS" && x.name === objectId)).map((x) => el("tr", { dataset: { catalogue: x.catalogue } },
      el("td", {}, `${x.catalogue} `, el("span", { class: "mono" }, x.name), x.tns_name && x.tns_name !== x.name ? el("span", { class: "dim small" }, ` (${x.tns_name})`) : ""),
      el("td", { class: "mono" }, `${num(x.separation_arcsec)}″`),
      el("td", { class: "dim small" }, x.label || ""))),
  ];
  table.replaceChildren(
    el("tr", {}, el("th", {}, "Match"), el("th", {}, "Sep."), el("th", {}, "")),
    ...(rows.length ? rows : [el("tr", {}, el("td", { class: "dim small" }, `nothing within ${m.radius_arcsec}″`))]),
  );
  state.crossmatches = rows.length;
  links.replaceChildren(
    el("li", { class: "dim small mono" }, `RA ${num(m.ra, 5)} Dec ${num(m.dec, 5)}${m.tns_name ? ` · TNS ${m.tns_name}` : ""}`),
    ...m.links.map((l) => el("li", {}, el("a", { href: l.url, target: "_blank", rel: "noopener noreferrer", dataset: { service: l.service } }, `${l.service} ↗`))),
  );
  state.links = m.links.length;
}

/** Fill ``host`` with the object's stamps, cross-matches and links out (called when an object is opened). */
export function showObjectSky(host, objectId) {
  state.objectId = objectId;
  state.candid = null;
  state.stamps = 0;
  state.crossmatches = -1;
  state.links = 0;
  const cut = el("div", { class: "cutouts" });
  const table = el("table", { id: "crossmatches", class: "crossmatches" });
  const links = el("ul", { id: "links-out", class: "links-out" });
  host.replaceChildren(
    el("div", {}, el("h3", {}, "Cutouts ", el("span", { class: "dim small" }, "(science · template · difference)")), cut),
    el("div", {}, el("h3", {}, "Cross-matches"), table, el("h3", {}, "Look it up"), links),
  );
  loadCutouts(cut, objectId);
  loadCrossmatches(table, links, objectId);
}
