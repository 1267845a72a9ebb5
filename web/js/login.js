// The login page (/login): a 3D astronaut that watches the username being typed, covers its
// eyes while the password field has focus, and shakes sadly when a login fails.
//
// Real authentication: POST auth/login {username, password}; the server sets the HttpOnly
// cr_session cookie. On success the page goes to ?next= (a relative page) or the dashboard.
//
// For tests: window.astronautState = {ready, webgl, mode: "idle"|"watching"|"covering"|"sad",
//   headYaw, headPitch, targetYaw, cover, handsOnVisor, failures, frames, lastStatus, caret}
// and <body data-state="..."> mirrors the mode.

import * as THREE from "three";
import { buildAstronaut } from "./astronaut.js";

const $ = (id) => document.getElementById(id);
const SAD_SECONDS = 2.6;

const state = {
  ready: false, webgl: false, mode: "idle", headYaw: 0, headPitch: 0, targetYaw: 0, cover: 0,
  handsOnVisor: false, failures: 0, frames: 0, lastStatus: null, caret: null,
};
window.astronautState = state;

/** Where the caret of a text input is, in page pixels (measured with the input's own font). */
const measureCanvas = document.createElement("canvas").getContext("2d");
function caretPoint(input) {
  const style = getComputedStyle(input);
  measureCanvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
  const rect = input.getBoundingClientRect();
  const x = rect.left + parseFloat(style.paddingLeft) + measureCanvas.measureText(upto).width - input.scrollLeft;
  return { x: Math.min(x, rect.right - 4), y: rect.top + rect.height / 2 };
}

/** Only relative same-app targets for ?next= (no scheme, no //host). */
function nextTarget() {
  const next = new URLSearchParams(location.search).get("next");
  if (next && /^[A-Za-z0-9_\-./?=&%]*$/.test(next) && !next.startsWith("/") && !next.includes("//")) return next;
  return "./";
}

// ---------------------------------------------------------------- scene
function starField(count, radius) {
  const pos = new Float32Array(count * 3);
  const col = new Float32Array(count * 3);
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let i = 0; i < count; i++) {
    const u = rnd() * 2 - 1;
    const th = rnd() * Math.PI * 2;
    const r = radius * (0.6 + 0.4 * rnd());
    const s = Math.sqrt(1 - u * u);
    pos.set([r * s * Math.cos(th), r * u, r * s * Math.sin(th) - radius * 0.3], i * 3);
    const warm = rnd();
    col.set(warm > 0.85 ? [1, 0.85, 0.7] : warm < 0.2 ? [0.7, 0.8, 1] : [1, 1, 1], i * 3);
  }
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.BufferAttribute(pos, 3));
  g.setAttribute("color", new THREE.BufferAttribute(col, 3));
  return new THREE.Points(g, new THREE.PointsMaterial({ size: 0.06, vertexColors: true, sizeAttenuation: true, transparent: true, opacity: 0.9 }));
}

function planet() {
  const c = document.createElement("canvas");
  c.width = 512; c.height = 256;
  const g = c.getContext("2d");
  const grad = g.createLinearGradient(0, 0, 0, 256);
  grad.addColorStop(0, "#2b3f8f"); grad.addColorStop(0.5, "#6a5acd"); grad.addColorStop(1, "#1d2660");
  g.fillStyle = grad; g.fillRect(0, 0, 512, 256);
  for (let i = 0; i < 18; i++) {
    g.fillStyle = `rgba(${180 + (i * 37) % 70}, ${150 + (i * 53) % 90}, 255, 0.12)`;
    g.fillRect(0, 10 + i * 13 + Math.sin(i) * 5, 512, 6 + (i % 3) * 3);
  }
  const tex = new THREE.CanvasTexture(c);
  tex.colorSpace = THREE.SRGBColorSpace;
  const mesh = new THREE.Mesh(new THREE.SphereGeometry(6, 64, 48), new THREE.MeshStandardMaterial({ map: tex, roughness: 0.9 }));
  const ring = new THREE.Mesh(
    new THREE.RingGeometry(7.2, 10.5, 96),
    new THREE.MeshBasicMaterial({ color: 0x9fb4ff, side: THREE.DoubleSide, transparent: true, opacity: 0.18 }),
  );
  ring.rotation.x = Math.PI / 2.3;
  mesh.add(ring);
  return mesh;
}

function start() {
  const host = $("scene");
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, alpha: true });
  } catch (err) {
    document.body.classList.add("no-webgl");
    console.warn("no WebGL: the astronaut is not drawn", err);
    return null;
  }
  state.webgl = true;
  renderer.setPixelRatio(Math.min(devicePixelRatio, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  host.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(38, 1, 0.1, 200);
  camera.position.set(0, 1.1, 7);
  camera.lookAt(0, 0.9, 0);

  scene.add(new THREE.HemisphereLight(0xbfd4ff, 0x1a1030, 0.9));
  const sun = new THREE.DirectionalLight(0xfff1dc, 2.4);
  sun.position.set(4, 5, 6);
  scene.add(sun);
  const rimLight = new THREE.DirectionalLight(0x6fa8ff, 1.6);
  rimLight.position.set(-5, 2, -4);
  scene.add(rimLight);

  scene.add(starField(1600, 60));
  const world = planet();
  world.position.set(-9, -6.5, -14);
  scene.add(world);

  const astronaut = buildAstronaut();
  scene.add(astronaut.root);

  function resize() {
    const w = host.clientWidth || innerWidth;
    const h = host.clientHeight || innerHeight;
    renderer.setSize(w, h);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    // the astronaut sits in the left part of the screen, the card is on the right
    const halfWidth = Math.tan((camera.fov * Math.PI) / 360) * camera.position.z * camera.aspect;
    astronaut.root.position.x = w > 860 ? -halfWidth * 0.38 : 0;
  }
  addEventListener("resize", resize);
  resize();
  return { renderer, scene, camera, astronaut, world };
}

// ---------------------------------------------------------------- behaviour
const user = $("username");
const pass = $("password");
const form = $("login-form");
const message = $("message");
let sadUntil = 0;

function currentMode(now) {
  if (now < sadUntil) return "sad";
  const focused = document.activeElement;
  if (focused === pass) return "covering";
  if (focused === user) return "watching";
  return "idle";
}

/** World point the head should look at: the caret, unprojected to a plane in front of the astronaut. */
function lookTarget(view) {
  const p = caretPoint(user);
  state.caret = { x: Math.round(p.x), y: Math.round(p.y) };
  const rect = view.renderer.domElement.getBoundingClientRect();
  const ndc = new THREE.Vector3(((p.x - rect.left) / rect.width) * 2 - 1, -((p.y - rect.top) / rect.height) * 2 + 1, 0.5);
  ndc.unproject(view.camera);
  const dir = ndc.sub(view.camera.position).normalize();
  const depth = (view.camera.position.z - 2.2) / -dir.z; // the plane z = 2.2, between the astronaut and the glass
  return view.camera.position.clone().addScaledVector(dir, depth);
}

function setMessage(text, kind) {
  message.textContent = text;
  message.className = `message ${kind || ""}`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = user.value.trim();
  const password = pass.value;
  if (!username || !password) {
    setMessage("Enter your username and password.", "error");
    return;
  }
  $("submit").disabled = true;
  setMessage("Checking…", "");
  try {
    const answer = await fetch("auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
      credentials: "same-origin",
    });
    state.lastStatus = answer.status;
    if (answer.ok) {
      const me = await answer.json();
      setMessage(`Welcome aboard, ${me.username}.`, "ok");
      document.body.classList.add("success");
      setTimeout(() => location.assign(nextTarget()), 450);
      return;
    }
    const detail = await answer.json().then((b) => b.detail).catch(() => null);
    if (answer.status === 429) {
      const wait = answer.headers.get("Retry-After");
      setMessage(`${typeof detail === "string" ? detail : "Too many attempts"}${wait ? ` (retry in ${wait} s)` : ""}.`, "error");
    } else if (answer.status === 401) {
      setMessage(`${typeof detail === "string" ? detail[0].toUpperCase() + detail.slice(1) : "Invalid username or password"}.`, "error");
    } else {
      setMessage(`Login failed (HTTP ${answer.status}).`, "error");
    }
    state.failures += 1;
    sadUntil = performance.now() + SAD_SECONDS * 1000;
    view?.astronaut.sad();
    form.classList.remove("shake");
    void form.offsetWidth; // restart the CSS shake
    form.classList.add("shake");
    pass.select();
  } catch (err) {
    setMessage(`The server could not be reached: ${err.message}`, "error");
  } finally {
    $("submit").disabled = false;
  }
});

const view = start();
let last = performance.now();
function frame(now) {
  const dt = Math.min(0.05, (now - last) / 1000);
  last = now;
  const mode = currentMode(now);
  if (view) {
    view.astronaut.update(dt, { mode, lookAt: mode === "watching" ? lookTarget(view) : null });
    view.world.rotation.y += dt * 0.02;
    view.renderer.render(view.scene, view.camera);
    Object.assign(state, {
      headYaw: view.astronaut.state.headYaw,
      headPitch: view.astronaut.state.headPitch,
      targetYaw: view.astronaut.state.targetYaw,
      cover: view.astronaut.state.cover,
      handsOnVisor: view.astronaut.state.handsOnVisor,
      shake: view.astronaut.state.shake,
    });
  }
  state.mode = mode;
  if (document.body.dataset.state !== mode) document.body.dataset.state = mode;
  state.frames += 1;
  state.ready = true;
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
user.focus();
