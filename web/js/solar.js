// The solar-system explorer (/solar).
//
// URL parameters
//   ?t=ISO-8601   start at this instant (UTC when no zone is given), paused;
//                 without it the page starts at the clock's time, running at 1x.
//
// Readouts (stable ids): #utc (ISO 8601), #jd (Julian Date of the UTC instant),
// #gmst (Greenwich mean sidereal time, IAU 1982, as hh:mm:ss.sss HOURS), #gmst-deg
// (the same in degrees), #subsolar.
//
// For tests, window.solarState = {ready, webgl, iso, jd, gmstDeg, gmstHours,
//   planets: {mercury: {x, y, z}, ...}   heliocentric, AU, ecliptic + equinox J2000
//   subsolar: {lonDeg, latDeg}, earthCheckDeg, playing, rate, frames}
// earthCheckDeg is the angle between the Sun direction given to the Earth shader and the
// rendered globe's subsolar point, read back from the scene graph (should be ~0).
//
// Scene axes: x = ecliptic x (J2000 equinox), y = ecliptic north, z = -ecliptic y.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { CSS2DObject, CSS2DRenderer } from "three/addons/renderers/CSS2DRenderer.js";
import { feature } from "topojson-client";
import * as astro from "./astro.js";

const LAND_URL = new URL("../../vendor/world-atlas/land-110m.json", import.meta.url);

const D2R = Math.PI / 180;

// Pole directions (IAU WGCCRE, J2000 RA/Dec, degrees) give each globe its tilt.
const PLANET_STYLE = {
  mercury: { label: "Mercury", color: "#b9b2a8", radius: 0.07, minPx: 3.5, pole: [281.01, 61.41], kind: "rock" },
  venus: { label: "Venus", color: "#ead7a6", radius: 0.11, minPx: 4, pole: [272.76, 67.16], kind: "haze" },
  earth: { label: "Earth", color: "#5b9cf0", radius: 0.12, minPx: 5.5, kind: "earth" },
  mars: { label: "Mars", color: "#d0653f", radius: 0.09, minPx: 4, pole: [317.68, 52.89], kind: "mars" },
  jupiter: { label: "Jupiter", color: "#d9b58c", radius: 0.36, minPx: 7, pole: [268.06, 64.5], kind: "bands" },
  saturn: { label: "Saturn", color: "#e6d08f", radius: 0.3, minPx: 6.5, pole: [40.59, 83.54], kind: "bands", ring: true },
  uranus: { label: "Uranus", color: "#a4e6ee", radius: 0.2, minPx: 5, pole: [257.31, -15.18], kind: "ice" },
  neptune: { label: "Neptune", color: "#5f82f2", radius: 0.19, minPx: 5, pole: [299.36, 43.46], kind: "ice" },
};

// Seconds of simulated time per second of real time.
const SPEEDS = [
  [1, "1× (real time)"], [10, "10×"], [60, "1 min/s"], [600, "10 min/s"], [3600, "1 h/s"],
  [21600, "6 h/s"], [86400, "1 day/s"], [604800, "1 week/s"], [2629800, "1 month/s"],
  [31557600, "1 year/s"],
];

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- small helpers

/** Ecliptic J2000 vector -> scene axes. */
function sceneVec(v) {
  return new THREE.Vector3(v.x, v.z, -v.y);
}

/** Unit vector (scene axes) of a J2000 RA/Dec direction. */
function sceneFromRaDec(raDeg, decDeg) {
  const eq = {
    x: Math.cos(decDeg * D2R) * Math.cos(raDeg * D2R),
    y: Math.cos(decDeg * D2R) * Math.sin(raDeg * D2R),
    z: Math.sin(decDeg * D2R),
  };
  const e = astro.OBLIQUITY_J2000 * D2R;
  const ecl = { x: eq.x, y: Math.cos(e) * eq.y + Math.sin(e) * eq.z, z: -Math.sin(e) * eq.y + Math.cos(e) * eq.z };
  return sceneVec(ecl).normalize();
}

/** Deterministic pseudo-random numbers (mulberry32), so every load looks the same. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Smooth value noise in [0, 1), periodic in x with period `px` cells. */
function makeNoise(seed) {
  const rand = rng(seed);
  const N = 256;
  const table = Float32Array.from({ length: N * N }, rand);
  const at = (i, j) => table[(((j % N) + N) % N) * N + (((i % N) + N) % N)];
  const fade = (t) => t * t * (3 - 2 * t);
  const noise = (x, y, px) => {
    const i = Math.floor(x), j = Math.floor(y);
    const fx = fade(x - i), fy = fade(y - j);
    const wrap = (k) => (px ? ((k % px) + px) % px : k);
    const a = at(wrap(i), j), b = at(wrap(i + 1), j), c = at(wrap(i), j + 1), d = at(wrap(i + 1), j + 1);
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
  };
  return (x, y, octaves = 4, px = 0) => {
    let sum = 0, amp = 0.5, norm = 0, f = 1;
    for (let o = 0; o < octaves; o++) {
      sum += amp * noise(x * f, y * f, px ? px * f : 0);
      norm += amp;
      amp *= 0.5;
      f *= 2;
    }
    return sum / norm;
  };
}

function canvasTexture(canvas, srgb = true) {
  const tex = new THREE.CanvasTexture(canvas);
  if (srgb) tex.colorSpace = THREE.SRGBColorSpace;
  tex.anisotropy = 4;
  return tex;
}

function hexRgb(hex) {
  const c = new THREE.Color(hex);
  return [c.r * 255, c.g * 255, c.b * 255];
}

// ---------------------------------------------------------------- procedural textures

/** Equirectangular texture of a planet (u: longitude, v: latitude), painted pixel by pixel. */
function planetTexture(name, style) {
  const w = 256, h = 128;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const noise = makeNoise(name.length * 977 + name.charCodeAt(0));
  const base = hexRgb(style.color);
  for (let y = 0; y < h; y++) {
    const lat = 90 - ((y + 0.5) / h) * 180;
    for (let x = 0; x < w; x++) {
      const n = noise((x / w) * 8, (y / h) * 4, 5, 8);
      let k;
      switch (style.kind) {
        case "bands": {
          const band = Math.sin(lat * 0.23 + 2.0 * noise((x / w) * 4, (y / h) * 16, 3, 4));
          k = 0.78 + 0.22 * band + 0.12 * (n - 0.5);
          break;
        }
        case "ice":
          k = 0.9 + 0.08 * Math.sin(lat * 0.12) + 0.08 * (n - 0.5);
          break;
        case "haze":
          k = 0.9 + 0.14 * (n - 0.5);
          break;
        case "mars":
          k = 0.72 + 0.55 * (n - 0.5) * 1.4;
          break;
        default:
          k = 0.75 + 0.5 * (n - 0.5);
      }
      let [r, g, b] = base.map((c) => c * k);
      if (style.kind === "mars" && Math.abs(lat) > 78) [r, g, b] = [235, 232, 228];
      const i = (y * w + x) * 4;
      img.data[i] = r;
      img.data[i + 1] = g;
      img.data[i + 2] = b;
      img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvasTexture(canvas);
}

function sunTexture() {
  const w = 256, h = 128;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const noise = makeNoise(7);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const n = noise((x / w) * 24, (y / h) * 12, 4, 24);
      const i = (y * w + x) * 4;
      img.data[i] = 255;
      img.data[i + 1] = 150 + 90 * n;
      img.data[i + 2] = 40 + 90 * n * n;
      img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvasTexture(canvas);
}

function glowTexture(inner, outer) {
  const s = 256;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = s;
  const ctx = canvas.getContext("2d");
  const g = ctx.createRadialGradient(s / 2, s / 2, 0, s / 2, s / 2, s / 2);
  g.addColorStop(0, inner);
  g.addColorStop(0.25, outer);
  g.addColorStop(1, "rgba(0,0,0,0)");
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, s, s);
  return canvasTexture(canvas);
}

/** Saturn's rings as a 1-D radial profile (u = 0 inner edge, 1 outer edge). */
function ringTexture() {
  const w = 512;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = 1;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, 1);
  const noise = makeNoise(42);
  for (let x = 0; x < w; x++) {
    const u = x / w;
    let a = 0.35 + 0.5 * noise(u * 40, 0.5, 2);
    if (u > 0.57 && u < 0.62) a *= 0.08; // Cassini division
    if (u < 0.2) a *= 0.35; // faint C ring
    if (u > 0.93) a *= 0.5;
    const i = x * 4;
    img.data[i] = 226;
    img.data[i + 1] = 208;
    img.data[i + 2] = 165;
    img.data[i + 3] = 255 * a;
  }
  ctx.putImageData(img, 0, 0);
  return canvasTexture(canvas);
}

/**
 * Day and night maps of the Earth, equirectangular (left edge 180 W, top edge 90 N),
 * coloured by latitude over Natural Earth's coastlines (world-atlas, npm).
 */
function earthTextures(land) {
  const w = 2048, h = 1024;
  const mask = document.createElement("canvas");
  mask.width = w;
  mask.height = h;
  const mctx = mask.getContext("2d");
  mctx.fillStyle = "#000";
  mctx.fillRect(0, 0, w, h);
  if (land) {
    mctx.fillStyle = "#fff";
    const px = ([lon, lat]) => [((lon + 180) / 360) * w, ((90 - lat) / 180) * h];
    mctx.beginPath();
    for (const f of land.features) {
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
      for (const poly of polys) {
        for (const ring of poly) {
          ring.forEach((p, i) => {
            const [x, y] = px(p);
            if (i === 0) mctx.moveTo(x, y);
            else mctx.lineTo(x, y);
          });
          mctx.closePath();
        }
      }
    }
    mctx.fill("evenodd");
  }
  const m = mctx.getImageData(0, 0, w, h).data;

  const day = document.createElement("canvas");
  const night = document.createElement("canvas");
  day.width = night.width = w;
  day.height = night.height = h;
  const dctx = day.getContext("2d");
  const nctx = night.getContext("2d");
  const dimg = dctx.createImageData(w, h);
  const nimg = nctx.createImageData(w, h);
  const noise = makeNoise(2024);
  const lights = rng(99);
  for (let y = 0; y < h; y++) {
    const lat = 90 - ((y + 0.5) / h) * 180;
    const alat = Math.abs(lat);
    for (let x = 0; x < w; x++) {
      const lon = ((x + 0.5) / w) * 360 - 180;
      const i = (y * w + x) * 4;
      const isLand = m[i] > 127;
      const n = noise((x / w) * 32, (y / h) * 16, 4, 32);
      let r, g, b;
      let nr = 2, ng = 4, nb = 12;
      if (isLand) {
        // green tropics, tan subtropical deserts, dark boreal forest, white ice
        const desert = Math.exp(-((alat - 24) ** 2) / 90) * (0.6 + 0.8 * (n - 0.3));
        const ice = alat > 66 && (lat < -60 || (lon > -75 && lon < -12 && lat > 59)) ? 1 : 0;
        r = 56 + 120 * desert + 18 * n;
        g = 98 + 70 * desert - 20 * (alat > 50) + 18 * n;
        b = 48 + 50 * desert + 10 * n;
        if (alat > 58) [r, g, b] = [r * 0.8 + 30, g * 0.8 + 26, b * 0.8 + 30];
        if (ice || alat > 78) [r, g, b] = [232 - 20 * n, 238 - 20 * n, 245 - 10 * n];
        // night: a faint land tint, city lights where people live (not on ice or deserts)
        nr = 9; ng = 10; nb = 17;
        if (!ice && alat < 62) {
          // sparse speckles, clustered by a high-frequency noise, fewer in deserts
          const cluster = noise((x / w) * 256, (y / h) * 128, 2, 256);
          const p = Math.max(0, cluster - 0.5) * 2.2 * (1 - Math.min(1, desert)) * (alat > 15 ? 1 : 0.6);
          if (lights() < p * p) {
            const k = 0.35 + 0.65 * lights();
            [nr, ng, nb] = [255 * k, 196 * k, 120 * k];
          }
        }
      } else {
        const depth = 0.55 + 0.45 * n;
        r = 8 + 14 * depth;
        g = 38 + 40 * depth;
        b = 86 + 60 * depth;
        if (alat > 72) [r, g, b] = [r + 90, g + 80, b + 60]; // sea ice, roughly
      }
      // faint graticule every 30 deg; the equator and prime meridian a little brighter
      const onLon = Math.abs(((lon + 180) % 30) - 15) > 14.9 || Math.abs(lon) < 0.1;
      const onLat = Math.abs(((lat + 90) % 30) - 15) > 14.85;
      if (onLon || onLat) {
        const k = Math.abs(lat) < 0.15 || Math.abs(lon) < 0.1 ? 0.45 : 0.2;
        r += (255 - r) * k * 0.5;
        g += (255 - g) * k * 0.5;
        b += (255 - b) * k * 0.5;
      }
      dimg.data[i] = r;
      dimg.data[i + 1] = g;
      dimg.data[i + 2] = b;
      dimg.data[i + 3] = 255;
      nimg.data[i] = nr;
      nimg.data[i + 1] = ng;
      nimg.data[i + 2] = nb;
      nimg.data[i + 3] = 255;
    }
  }
  dctx.putImageData(dimg, 0, 0);
  nctx.putImageData(nimg, 0, 0);
  return { day: canvasTexture(day), night: canvasTexture(night) };
}

// ---------------------------------------------------------------- Earth shader

// Day/night from the true Sun direction: cos(solar zenith angle) = dot(normal, sunDir).
// The terminator (mu = 0) is blended over +-4 deg of solar altitude, with a twilight tint
// and a thin atmosphere rim.
const EARTH_VERTEX = /* glsl */ `
  varying vec2 vUv;
  varying vec3 vNormalW;
  varying vec3 vViewW;
  void main() {
    vUv = uv;
    vNormalW = normalize(mat3(modelMatrix) * normal);
    vec4 wp = modelMatrix * vec4(position, 1.0);
    vViewW = normalize(cameraPosition - wp.xyz);
    gl_Position = projectionMatrix * viewMatrix * wp;
  }
`;
const EARTH_FRAGMENT = /* glsl */ `
  uniform sampler2D dayMap;
  uniform sampler2D nightMap;
  uniform vec3 sunDir;
  varying vec2 vUv;
  varying vec3 vNormalW;
  varying vec3 vViewW;
  void main() {
    vec3 n = normalize(vNormalW);
    float mu = dot(n, normalize(sunDir));
    float dayness = smoothstep(-0.07, 0.07, mu);
    vec3 dayC = texture2D(dayMap, vUv).rgb * (0.18 + 0.95 * max(mu, 0.0));
    vec3 nightC = texture2D(nightMap, vUv).rgb * 1.1;
    vec3 col = mix(nightC, dayC, dayness);
    col += vec3(1.0, 0.42, 0.12) * 0.14 * exp(-mu * mu / 0.0025);
    float rim = pow(1.0 - max(dot(n, normalize(vViewW)), 0.0), 3.0);
    col += vec3(0.3, 0.55, 1.0) * rim * (0.15 + 0.85 * smoothstep(-0.25, 0.3, mu));
    gl_FragColor = vec4(col, 1.0);
    #include <colorspace_fragment>
  }
`;

// ---------------------------------------------------------------- the app

class SolarApp {
  constructor() {
    const params = new URLSearchParams(location.search);
    const t = params.get("t");
    this.simMs = Date.now();
    this.playing = true;
    if (t !== null) {
      const ms = astro.parseInstant(t);
      if (Number.isFinite(ms)) {
        this.simMs = ms;
        this.playing = false;
      } else {
        this.showError(`Cannot read ?t=${t} as an ISO 8601 instant (e.g. 2024-03-20T03:06:00Z); showing now.`);
      }
    }
    this.speedIndex = 0;
    this.direction = 1;
    this.scaleMode = "compressed";
    this.follow = null;
    this.frames = 0;
    this.ready = false;
    this.needsRender = true;
    this.lastOrbitMs = NaN;
    this.earthCheckDeg = NaN;
    this.snapshot = astro.solarSnapshot(this.simMs);
  }

  get rate() {
    return SPEEDS[this.speedIndex][0] * this.direction;
  }

  displayRadius(r) {
    return this.scaleMode === "compressed" ? 4 * Math.sqrt(r) : 4 * r;
  }

  /** Heliocentric AU (ecliptic) -> scene position (distance mapped by the scale mode). */
  displayPos(v) {
    const r = Math.hypot(v.x, v.y, v.z);
    const k = r > 0 ? this.displayRadius(r) / r : 0;
    return sceneVec({ x: v.x * k, y: v.y * k, z: v.z * k });
  }

  showError(text) {
    const el = $("error");
    el.textContent = text;
    el.hidden = false;
    console.warn(text);
  }

  async init() {
    this.bindControls();
    try {
      this.initScene();
    } catch (err) {
      this.webgl = false;
      this.showError(`3D view unavailable (WebGL could not start: ${err.message}). The readouts still work.`);
    }
    this.update(true);
    if (this.webgl) {
      let land = null;
      try {
        const resp = await fetch(LAND_URL);
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        const topo = await resp.json();
        land = feature(topo, topo.objects.land);
      } catch (err) {
        this.showError(`Coastlines not loaded (${err.message}); run \`npm ci\` in web/.`);
      }
      const tex = earthTextures(land);
      this.earthMaterial.uniforms.dayMap.value = tex.day;
      this.earthMaterial.uniforms.nightMap.value = tex.night;
      this.needsRender = true;
    }
    this.ready = true;
    this.publishState();
    this.lastFrame = performance.now();
    requestAnimationFrame((now) => this.loop(now));
  }

  // ------------------------------------------------------------ scene

  initScene() {
    const host = $("scene");
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.webgl = true;
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    this.renderer.setSize(window.innerWidth, window.innerHeight);
    this.renderer.autoClear = false;
    host.appendChild(this.renderer.domElement);

    this.labels = new CSS2DRenderer();
    this.labels.setSize(window.innerWidth, window.innerHeight);
    Object.assign(this.labels.domElement.style, { position: "absolute", top: "0", left: "0", pointerEvents: "none" });
    host.appendChild(this.labels.domElement);

    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(45, window.innerWidth / window.innerHeight, 0.005, 6000);
    this.insetCamera = new THREE.PerspectiveCamera(24, 1, 0.001, 6000);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = true;
    this.controls.dampingFactor = 0.08;
    this.controls.minDistance = 0.3;
    this.controls.maxDistance = 1500;
    this.controls.addEventListener("start", () => { this.interacting = true; });
    this.controls.addEventListener("end", () => { this.interacting = false; });

    this.scene.add(new THREE.AmbientLight(0x8899cc, 0.12));
    const sunLight = new THREE.PointLight(0xfff4e0, 3.3, 0, 0);
    this.scene.add(sunLight);

    this.addStars();
    this.addSun();
    this.addEclipticGuides();
    this.addPlanets();
    this.setView("tilt");
    window.addEventListener("resize", () => this.resize());
    this.resize();
  }

  addStars() {
    const rand = rng(1234);
    const R = 2500;
    const make = (count, size, opacity, pick) => {
      const pos = new Float32Array(count * 3);
      const col = new Float32Array(count * 3);
      for (let i = 0; i < count; i++) {
        const v = pick();
        pos.set([v.x * R, v.y * R, v.z * R], i * 3);
        const t = rand();
        const c = new THREE.Color().setHSL(0.58 + 0.1 * (t - 0.5), 0.35 * rand(), 0.75 + 0.25 * rand());
        col.set([c.r, c.g, c.b], i * 3);
      }
      const geo = new THREE.BufferGeometry();
      geo.setAttribute("position", new THREE.BufferAttribute(pos, 3));
      geo.setAttribute("color", new THREE.BufferAttribute(col, 3));
      const mat = new THREE.PointsMaterial({
        size, sizeAttenuation: false, vertexColors: true, transparent: true, opacity, depthWrite: false,
      });
      this.scene.add(new THREE.Points(geo, mat));
    };
    const uniform = () => {
      const z = 2 * rand() - 1, a = 2 * Math.PI * rand(), s = Math.sqrt(1 - z * z);
      return new THREE.Vector3(s * Math.cos(a), z, s * Math.sin(a));
    };
    // Milky Way: stars crowded towards the galactic plane (north galactic pole at
    // RA 192.859, Dec 27.128, J2000).
    const ngp = sceneFromRaDec(192.859, 27.128);
    const gx = new THREE.Vector3(1, 0, 0).cross(ngp).normalize();
    const gy = ngp.clone().cross(gx);
    const galactic = () => {
      const a = 2 * Math.PI * rand();
      const b = (rand() + rand() + rand() - 1.5) * 0.22;
      return gx.clone().multiplyScalar(Math.cos(a) * Math.cos(b))
        .addScaledVector(gy, Math.sin(a) * Math.cos(b))
        .addScaledVector(ngp, Math.sin(b));
    };
    make(2600, 1.4, 0.75, uniform);
    make(500, 2.4, 0.9, uniform);
    make(9000, 1.1, 0.35, galactic);
  }

  addSun() {
    const sun = new THREE.Mesh(
      new THREE.SphereGeometry(0.55, 48, 24),
      new THREE.MeshBasicMaterial({ map: sunTexture() }),
    );
    this.scene.add(sun);
    const glow = new THREE.Sprite(new THREE.SpriteMaterial({
      map: glowTexture("rgba(255,236,190,0.95)", "rgba(255,150,40,0.35)"),
      blending: THREE.AdditiveBlending, depthWrite: false, transparent: true,
    }));
    glow.scale.set(4.2, 4.2, 1);
    this.scene.add(glow);
    this.scene.add(this.makeLabel("Sun", "#ffd27a"));
  }

  makeLabel(text, color, position = new THREE.Vector3()) {
    const div = document.createElement("div");
    div.className = "label";
    div.textContent = text;
    if (color) div.style.borderLeft = `2px solid ${color}`;
    const obj = new CSS2DObject(div);
    obj.position.copy(position);
    obj.center.set(-0.06, 1.1); // up and to the right of the body
    return obj;
  }

  addEclipticGuides() {
    this.guides = new THREE.Group();
    this.scene.add(this.guides);
  }

  rebuildGuides() {
    for (const child of [...this.guides.children]) {
      child.geometry?.dispose();
      this.guides.remove(child);
      if (child.element) child.element.remove();
    }
    const mat = new THREE.LineBasicMaterial({ color: 0x5577aa, transparent: true, opacity: 0.16 });
    for (const au of [1, 5, 10, 20, 30]) {
      const r = this.displayRadius(au);
      const pts = [];
      for (let i = 0; i <= 180; i++) {
        const a = (i / 180) * 2 * Math.PI;
        pts.push(new THREE.Vector3(r * Math.cos(a), 0, -r * Math.sin(a)));
      }
      this.guides.add(new THREE.Line(new THREE.BufferGeometry().setFromPoints(pts), mat));
      const a = -2.35; // ecliptic longitude of the ring labels (rad)
      const lab = this.makeLabel(`${au} AU`, null, new THREE.Vector3(r * Math.cos(a), 0, -r * Math.sin(a)));
      lab.element.classList.add("ring-label");
      lab.center.set(0.5, 0.5);
      this.guides.add(lab);
    }
    // Direction of the J2000 vernal equinox (ecliptic longitude 0).
    const far = this.displayRadius(32);
    const eq = new THREE.Line(
      new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(0.8, 0, 0), new THREE.Vector3(far, 0, 0)]),
      new THREE.LineDashedMaterial({ color: 0x88aaff, transparent: true, opacity: 0.35, dashSize: 0.4, gapSize: 0.3 }),
    );
    eq.computeLineDistances();
    this.guides.add(eq);
    const lab = this.makeLabel("♈︎ λ = 0°", "#88aaff", new THREE.Vector3(far, 0, 0));
    lab.element.title = "Direction of the J2000 vernal equinox (ecliptic longitude 0)";
    lab.element.classList.add("ring-label");
    this.guides.add(lab);
  }

  addPlanets() {
    this.bodies = {};
    for (const name of astro.PLANETS) {
      const style = PLANET_STYLE[name];
      const holder = new THREE.Group(); // at the planet's position; carries the label
      const spin = new THREE.Group(); // scaled so the globe keeps a minimum size on screen
      holder.add(spin);
      let mesh;
      if (style.kind === "earth") {
        this.earthMaterial = new THREE.ShaderMaterial({
          uniforms: {
            dayMap: { value: null },
            nightMap: { value: null },
            sunDir: { value: new THREE.Vector3(1, 0, 0) },
          },
          vertexShader: EARTH_VERTEX,
          fragmentShader: EARTH_FRAGMENT,
        });
        mesh = new THREE.Mesh(new THREE.SphereGeometry(style.radius, 96, 48), this.earthMaterial);
        // Earth-fixed frame: a marker where the Sun is overhead, and the rotation axis.
        this.subsolarMarker = new THREE.Mesh(
          new THREE.SphereGeometry(style.radius * 0.045, 12, 8),
          new THREE.MeshBasicMaterial({ color: 0xffe066 }),
        );
        mesh.add(this.subsolarMarker);
        const axis = new THREE.Line(
          new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(0, -1.35 * style.radius, 0), new THREE.Vector3(0, 1.35 * style.radius, 0)]),
          new THREE.LineBasicMaterial({ color: 0x9fc4ff, transparent: true, opacity: 0.7 }),
        );
        mesh.add(axis);
        this.earthMesh = mesh;
      } else {
        mesh = new THREE.Mesh(
          new THREE.SphereGeometry(style.radius, 48, 24),
          new THREE.MeshStandardMaterial({ map: planetTexture(name, style), roughness: 0.95, metalness: 0 }),
        );
        const pole = sceneFromRaDec(...style.pole);
        mesh.quaternion.setFromUnitVectors(new THREE.Vector3(0, 1, 0), pole);
        if (style.ring) {
          const inner = style.radius * 1.24, outer = style.radius * 2.27;
          const geo = new THREE.RingGeometry(inner, outer, 128, 1);
          const uv = geo.attributes.uv;
          const p = geo.attributes.position;
          for (let i = 0; i < uv.count; i++) {
            const r = Math.hypot(p.getX(i), p.getY(i));
            uv.setXY(i, (r - inner) / (outer - inner), 0.5);
          }
          const ring = new THREE.Mesh(geo, new THREE.MeshStandardMaterial({
            map: ringTexture(), transparent: true, side: THREE.DoubleSide, roughness: 1, depthWrite: false,
          }));
          ring.rotation.x = -Math.PI / 2; // ring plane = the globe's equator (local xz)
          mesh.add(ring);
        }
      }
      spin.add(mesh);
      const label = this.makeLabel(style.label, style.color);
      holder.add(label);
      this.scene.add(holder);

      const orbit = new THREE.LineLoop(
        new THREE.BufferGeometry(),
        new THREE.LineBasicMaterial({ color: style.color, transparent: true, opacity: 0.42 }),
      );
      this.scene.add(orbit);
      this.bodies[name] = { holder, spin, mesh, orbit, style, label };
    }
  }

  rebuildOrbits() {
    for (const name of astro.PLANETS) {
      const pts = astro.orbitPoints(name, this.simMs, name === "mercury" ? 512 : 384).map((v) => this.displayPos(v));
      const orbit = this.bodies[name].orbit;
      orbit.geometry.dispose();
      orbit.geometry = new THREE.BufferGeometry().setFromPoints(pts);
    }
    this.lastOrbitMs = this.simMs;
    this.rebuildGuides();
  }

  setView(which) {
    const R = this.displayRadius(31);
    this.follow = null;
    if (which === "earth") {
      this.follow = "earth";
      // Beside the Earth, 65 deg round from the Sun: day side, terminator and some night.
      const e = this.bodies.earth.holder.position;
      const toSun = e.clone().negate().normalize();
      const up = new THREE.Vector3(0, 1, 0);
      const side = up.clone().cross(toSun).normalize();
      const dir = toSun.multiplyScalar(Math.cos(65 * D2R)).addScaledVector(side, Math.sin(65 * D2R))
        .addScaledVector(up, 0.35).normalize();
      this.controls.target.copy(e);
      this.camera.position.copy(e).addScaledVector(dir, 1.5);
    } else if (which === "top") {
      this.controls.target.set(0, 0, 0);
      this.camera.position.set(0, R * 2.45, 0.01);
    } else {
      this.controls.target.set(0, -R * 0.08, 0);
      const el = 32 * D2R, az = 28 * D2R;
      this.camera.position.set(R * 2.0 * Math.cos(el) * Math.sin(az), R * 2.0 * Math.sin(el), R * 2.0 * Math.cos(el) * Math.cos(az));
    }
    this.controls.update();
    this.needsRender = true;
  }

  resize() {
    const w = window.innerWidth, h = window.innerHeight;
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.renderer.setSize(w, h);
    this.labels.setSize(w, h);
    this.insetSize = Math.round(Math.max(160, Math.min(300, 0.32 * Math.min(w, h))));
    document.documentElement.style.setProperty("--inset-size", `${this.insetSize}px`);
    this.needsRender = true;
  }

  // ------------------------------------------------------------ time and state

  update(force = false) {
    const s = astro.solarSnapshot(this.simMs);
    this.snapshot = s;
    if (this.webgl) {
      if (force || !(Math.abs(this.simMs - this.lastOrbitMs) < 3.15e10)) this.rebuildOrbits();
      const prevEarth = this.bodies.earth.holder.position.clone();
      for (const name of astro.PLANETS) this.bodies[name].holder.position.copy(this.displayPos(s.planets[name]));
      if (this.follow === "earth") {
        const delta = this.bodies.earth.holder.position.clone().sub(prevEarth);
        this.camera.position.add(delta);
        this.controls.target.add(delta);
      }
      this.orientEarth(s);
    }
    this.updateReadouts(s);
    this.publishState();
    this.needsRender = true;
  }

  /** Rotate the Earth globe to its real orientation and aim the shader's Sun. */
  orientEarth(s) {
    // R = S M S^T, with M: Earth-fixed -> ecliptic J2000 and S: ecliptic -> scene axes.
    // The sphere's own axes are S applied to Earth-fixed ones (lon 0 -> +x, north -> +y).
    const M = astro.earthOrientation(this.simMs);
    const S = [[1, 0, 0], [0, 0, 1], [0, -1, 0]];
    const R = astro.matMul(S, astro.matMul(M, astro.transpose(S)));
    const m4 = new THREE.Matrix4().set(
      R[0][0], R[0][1], R[0][2], 0,
      R[1][0], R[1][1], R[1][2], 0,
      R[2][0], R[2][1], R[2][2], 0,
      0, 0, 0, 1,
    );
    this.earthMesh.quaternion.setFromRotationMatrix(m4);
    const sunDir = sceneVec(s.sunDir).normalize();
    this.earthMaterial.uniforms.sunDir.value.copy(sunDir);

    // Subsolar marker in the globe's own axes, from the geographic lon/lat.
    const lon = s.subsolar.lonDeg * D2R, lat = s.subsolar.latDeg * D2R;
    const body = { x: Math.cos(lat) * Math.cos(lon), y: Math.cos(lat) * Math.sin(lon), z: Math.sin(lat) };
    this.subsolarMarker.position.copy(sceneVec(body).multiplyScalar(PLANET_STYLE.earth.radius * 1.005));

    // Read the marker back through the scene graph: it must sit under the shader's Sun.
    this.scene.updateMatrixWorld(true);
    const centre = this.earthMesh.getWorldPosition(new THREE.Vector3());
    const marker = this.subsolarMarker.getWorldPosition(new THREE.Vector3()).sub(centre).normalize();
    this.earthCheckDeg = marker.angleTo(sunDir) / D2R;
  }

  updateReadouts(s) {
    $("utc").textContent = s.iso;
    $("jd").textContent = s.jd.toFixed(6);
    $("gmst").textContent = astro.formatHMS(s.gmstDeg, 3);
    $("gmst-deg").textContent = s.gmstDeg.toFixed(5);
    const lon = s.subsolar.lonDeg, lat = s.subsolar.latDeg;
    $("subsolar").textContent = `${Math.abs(lat).toFixed(2)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lon).toFixed(2)}° ${lon >= 0 ? "E" : "W"}`;
    $("validity").hidden = s.valid;
    const rateText = this.playing ? `${this.direction < 0 ? "−" : ""}${SPEEDS[this.speedIndex][1]}` : "paused";
    $("rate").textContent = rateText;
    $("speed-label").textContent = `${this.direction < 0 ? "−" : ""}${SPEEDS[this.speedIndex][1]}`;
    const when = $("when");
    if (document.activeElement !== when) when.value = s.iso.slice(0, 19);

    const rows = $("planet-rows");
    if (!rows.children.length) {
      for (const name of astro.PLANETS) {
        const tr = document.createElement("tr");
        tr.id = `row-${name}`;
        // Built node by node: a style attribute in markup would be refused by the CSP (style-src 'self').
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = PLANET_STYLE[name].color;
        const label = document.createElement("td");
        label.append(swatch, PLANET_STYLE[name].label);
        tr.append(label, ...[0, 1, 2].map(() => document.createElement("td")));
        rows.appendChild(tr);
      }
    }
    for (const name of astro.PLANETS) {
      const sph = astro.toSpherical(s.planets[name]);
      const cells = $(`row-${name}`).children;
      cells[1].textContent = `${sph.lon.toFixed(2)}°`;
      cells[2].textContent = `${sph.lat >= 0 ? "+" : "−"}${Math.abs(sph.lat).toFixed(2)}°`;
      cells[3].textContent = sph.r.toFixed(3);
    }
  }

  publishState() {
    const s = this.snapshot;
    const planets = {};
    for (const name of astro.PLANETS) {
      const p = s.planets[name];
      planets[name] = { x: p.x, y: p.y, z: p.z };
    }
    window.solarState = {
      ready: this.ready,
      webgl: Boolean(this.webgl),
      iso: s.iso,
      ms: s.ms,
      jd: s.jd,
      gmstDeg: s.gmstDeg,
      gmstHours: s.gmstHours,
      planets,
      subsolar: { ...s.subsolar },
      earthCheckDeg: this.earthCheckDeg,
      playing: this.playing,
      rate: this.playing ? this.rate : 0,
      frames: this.frames,
    };
  }

  setTime(ms) {
    if (!Number.isFinite(ms)) return;
    this.simMs = Math.min(Math.max(ms, -8.64e15 + 1), 8.64e15 - 1);
    this.update(true);
  }

  // ------------------------------------------------------------ controls

  bindControls() {
    const speed = $("speed");
    speed.max = String(SPEEDS.length - 1);
    speed.value = String(this.speedIndex);
    speed.addEventListener("input", () => {
      this.speedIndex = Number(speed.value);
      this.update();
    });
    $("play").addEventListener("click", () => this.togglePlay());
    $("reverse").addEventListener("click", () => {
      this.direction = -this.direction;
      $("reverse").setAttribute("aria-pressed", String(this.direction < 0));
      this.update();
    });
    $("now").addEventListener("click", () => this.setTime(Date.now()));
    $("when").addEventListener("change", (ev) => {
      const ms = astro.parseInstant(ev.target.value);
      if (Number.isFinite(ms)) this.setTime(ms);
    });
    $("scale").addEventListener("change", (ev) => {
      this.scaleMode = ev.target.value;
      this.update(true);
      this.setView(this.follow === "earth" ? "earth" : "tilt");
    });
    $("view-top").addEventListener("click", () => this.setView("top"));
    $("view-tilt").addEventListener("click", () => this.setView("tilt"));
    $("view-earth").addEventListener("click", () => this.setView("earth"));
    window.addEventListener("keydown", (ev) => {
      if (ev.code === "Space" && !(ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement)) {
        ev.preventDefault();
        this.togglePlay();
      }
    });
    this.syncPlayButton();
  }

  togglePlay() {
    this.playing = !this.playing;
    this.syncPlayButton();
    this.update();
  }

  syncPlayButton() {
    const b = $("play");
    b.textContent = this.playing ? "Pause" : "Play";
    b.setAttribute("aria-pressed", String(!this.playing));
  }

  // ------------------------------------------------------------ rendering

  /** Keep small globes at least a few pixels wide; put each label just above its globe. */
  applyMinimumSizes() {
    const h = this.renderer.domElement.clientHeight || window.innerHeight;
    const perPx = 2 * Math.tan((this.camera.fov * D2R) / 2) / h;
    const screenUp = new THREE.Vector3(0, 1, 0).applyQuaternion(this.camera.quaternion);
    for (const name of astro.PLANETS) {
      const b = this.bodies[name];
      const d = this.camera.position.distanceTo(b.holder.position);
      const k = Math.max(1, (b.style.minPx * d * perPx) / b.style.radius);
      b.spin.scale.setScalar(k);
      b.label.position.copy(screenUp).multiplyScalar(b.style.radius * k * (b.style.ring ? 1.3 : 0.9));
    }
  }

  /** Labels of the main view must not float over the Earth close-up. */
  hideLabelsUnderInset() {
    const frame = document.querySelector(".earth-frame").getBoundingClientRect();
    for (const el of this.labels.domElement.children) {
      if (el.style.display === "none") continue;
      const r = el.getBoundingClientRect();
      const over = r.right > frame.left && r.left < frame.right && r.bottom > frame.top && r.top < frame.bottom;
      el.style.visibility = over ? "hidden" : "";
    }
  }

  placeInsetCamera() {
    // Fixed in inertial space (so the globe is seen turning), 60 deg round from the Sun
    // towards the evening side and a little north: day, terminator and night in one view.
    const e = this.bodies.earth;
    const centre = e.holder.position;
    const sun = this.earthMaterial.uniforms.sunDir.value;
    const up = new THREE.Vector3(0, 1, 0);
    const side = up.clone().cross(sun).normalize();
    const dir = sun.clone().multiplyScalar(Math.cos(60 * D2R)).addScaledVector(side, -Math.sin(60 * D2R))
      .addScaledVector(up, 0.42).normalize();
    const radius = e.style.radius * e.spin.scale.x;
    this.insetCamera.position.copy(centre).addScaledVector(dir, radius * 6.6);
    this.insetCamera.up.copy(up);
    this.insetCamera.lookAt(centre);
    this.insetCamera.near = radius * 0.5;
    this.insetCamera.far = 6000;
    this.insetCamera.updateProjectionMatrix();
  }

  render() {
    const r = this.renderer;
    const w = r.domElement.clientWidth, h = r.domElement.clientHeight;
    this.applyMinimumSizes();
    r.setScissorTest(false);
    r.setViewport(0, 0, w, h);
    r.setClearColor(0x03050b, 1);
    r.clear();
    r.render(this.scene, this.camera);
    this.labels.render(this.scene, this.camera);
    this.hideLabelsUnderInset();

    // Earth close-up, bottom right (matches the .earth-frame box).
    const s = this.insetSize, m = 14;
    this.placeInsetCamera();
    r.setScissorTest(true);
    r.setViewport(w - s - m, m, s, s);
    r.setScissor(w - s - m, m, s, s);
    r.setClearColor(0x050a16, 1);
    r.clear();
    const lines = [this.guides, ...Object.values(this.bodies).map((b) => b.orbit)];
    for (const o of lines) o.visible = false;
    r.render(this.scene, this.insetCamera);
    for (const o of lines) o.visible = true;
    r.setScissorTest(false);
  }

  loop(now) {
    const dt = Math.min(0.25, Math.max(0, (now - this.lastFrame) / 1000));
    this.lastFrame = now;
    if (this.playing && dt > 0) {
      this.simMs += dt * 1000 * this.rate;
      this.update();
    }
    if (this.webgl) {
      const moved = this.controls.update();
      if (moved || this.needsRender || this.interacting) {
        this.render();
        this.needsRender = false;
        this.frames += 1;
        if (window.solarState) window.solarState.frames = this.frames;
      }
    } else {
      this.frames += 1;
      if (window.solarState) window.solarState.frames = this.frames;
    }
    requestAnimationFrame((t) => this.loop(t));
  }
}

const app = new SolarApp();
app.init().catch((err) => {
  console.error(err);
  app.showError(`The page failed to start: ${err.message}`);
});
