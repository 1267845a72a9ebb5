// Pure astronomy for the solar-system page: no DOM, no three.js.
//
// Conventions
// - Instants are JavaScript time values: milliseconds since 1970-01-01T00:00:00Z (UTC,
//   leap seconds not counted, as Date.now()).
// - UT1 is taken equal to UTC (|UT1-UTC| < 0.9 s).
// - Planet positions use TT, approximated as UTC + 69.184 s (TAI-UTC = 37 s since 2017);
//   the error this makes (at most about a minute of time over 1800-2050) moves Mercury by
//   < 0.003 deg, far below the accuracy of the elements.
// - Vectors are heliocentric, in AU, in the ecliptic and mean equinox of J2000:
//   x towards the J2000 equinox, z towards the ecliptic north pole.
// - Angles are degrees unless a name ends in Rad.

export const MS_PER_DAY = 86400000;
export const J2000_JD = 2451545.0;
/** 2000-01-01T12:00:00Z as a JS time value (the J2000 epoch, read as UTC). */
export const J2000_MS = Date.UTC(2000, 0, 1, 12, 0, 0);
export const DAYS_PER_CENTURY = 36525;
/** Mean obliquity of the ecliptic at J2000 (IAU 1976), degrees. */
export const OBLIQUITY_J2000 = 23.4392911;
export const TT_MINUS_UTC_S = 69.184;
/** Range of validity of JPL's Table 1 elements. */
export const VALID_FROM_MS = Date.UTC(1800, 0, 1);
export const VALID_TO_MS = Date.UTC(2050, 11, 31, 23, 59, 59);

const D2R = Math.PI / 180;
const R2D = 180 / Math.PI;

/**
 * Keplerian elements and their rates per Julian century, J2000 ecliptic and equinox:
 * JPL Solar System Dynamics, "Approximate Positions of the Planets" (E. M. Standish),
 * Table 1, valid 1800 AD - 2050 AD. https://ssd.jpl.nasa.gov/planets/approx_pos.html
 * Order: a [AU], e, I [deg], L mean longitude [deg], varpi longitude of perihelion [deg],
 * Omega longitude of the ascending node [deg]. "earth" is the Earth-Moon barycentre
 * (the Earth is at most 4700 km, 3e-5 AU, away from it).
 */
export const PLANET_ELEMENTS = Object.freeze({
  mercury: [[0.38709927, 0.20563593, 7.00497902, 252.25032350, 77.45779628, 48.33076593],
            [0.00000037, 0.00001906, -0.00594749, 149472.67411175, 0.16047689, -0.12534081]],
  venus:   [[0.72333566, 0.00677672, 3.39467605, 181.97909950, 131.60246718, 76.67984255],
            [0.00000390, -0.00004107, -0.00078890, 58517.81538729, 0.00268329, -0.27769418]],
  earth:   [[1.00000261, 0.01671123, -0.00001531, 100.46457166, 102.93768193, 0.0],
            [0.00000562, -0.00004392, -0.01294668, 35999.37244981, 0.32327364, 0.0]],
  mars:    [[1.52371034, 0.09339410, 1.84969142, -4.55343205, -23.94362959, 49.55953891],
            [0.00001847, 0.00007882, -0.00813131, 19140.30268499, 0.44441088, -0.29257343]],
  jupiter: [[5.20288700, 0.04838624, 1.30439695, 34.39644051, 14.72847983, 100.47390909],
            [-0.00011607, -0.00013253, -0.00183714, 3034.74612775, 0.21252668, 0.20469106]],
  saturn:  [[9.53667594, 0.05386179, 2.48599187, 49.95424423, 92.59887831, 113.66242448],
            [-0.00125060, -0.00050991, 0.00193609, 1222.49362201, -0.41897216, -0.28867794]],
  uranus:  [[19.18916464, 0.04725744, 0.77263783, 313.23810451, 170.95427630, 74.01692503],
            [-0.00196176, -0.00004397, -0.00242939, 428.48202785, 0.40805281, 0.04240589]],
  neptune: [[30.06992276, 0.00859048, 1.77004347, -55.12002969, 44.96476227, 131.78422574],
            [0.00026291, 0.00005105, 0.00035372, 218.45945325, -0.32241464, -0.00508664]],
});

export const PLANETS = Object.freeze(Object.keys(PLANET_ELEMENTS));

/** x mod 360 in [0, 360). */
export function wrap360(x) {
  const r = x % 360;
  return r < 0 ? r + 360 : r;
}

/** x wrapped to [-180, 180). */
export function wrap180(x) {
  return wrap360(x + 180) - 180;
}

/**
 * Parse an ISO 8601 instant; without a zone designator it is read as UTC
 * (JavaScript would read "2024-03-20T03:06" as local time).
 * @returns {number} JS time value, or NaN when the text is not a date.
 */
export function parseInstant(text) {
  if (typeof text !== "string" || text.trim() === "") return NaN;
  let s = text.trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += "T00:00:00";
  if (/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) s += "Z";
  return Date.parse(s);
}

/** Days since J2000.0 (UTC time scale); exact in double precision. */
export function daysSinceJ2000(ms) {
  return (ms - J2000_MS) / MS_PER_DAY;
}

/** Julian Date of a UTC instant (the "UTC JD" that astropy's Time(t).jd gives). */
export function julianDate(ms) {
  return J2000_JD + daysSinceJ2000(ms);
}

/** Julian centuries of TT since J2000.0, the time argument of the planetary elements. */
export function centuriesTT(ms) {
  return (daysSinceJ2000(ms) + TT_MINUS_UTC_S / 86400) / DAYS_PER_CENTURY;
}

/**
 * Greenwich mean sidereal time, IAU 1982 (Aoki et al. 1982), with UT1 = UTC.
 * Same arrangement as SOFA/ERFA iauGmst82: the polynomial in Julian centuries of UT1 plus
 * the fraction of the day, so that no precision is lost on large day counts.
 * @returns {number} degrees in [0, 360)
 */
export function gmstDeg(ms) {
  const d = daysSinceJ2000(ms); // JD(UT1) - 2451545.0, an integer at 12h UT
  const t = d / DAYS_PER_CENTURY;
  const a = 24110.54841 - 43200; // seconds; -12h because JDs start at noon
  const b = 8640184.812866;
  const c = 0.093104;
  const e = -6.2e-6;
  const frac = d - Math.floor(d); // JD fraction: 0 at 12h UT
  const seconds = a + (b + (c + e * t) * t) * t + 86400 * frac;
  return wrap360((seconds / 86400) * 360);
}

/** Sidereal time as [h, m, s] for display. */
export function degToHMS(deg) {
  const hours = wrap360(deg) / 15;
  const h = Math.floor(hours);
  const m = Math.floor((hours - h) * 60);
  const s = (hours - h - m / 60) * 3600;
  return [h, m, s];
}

/** "hh:mm:ss.sss" from degrees (15 deg = 1 h). */
export function formatHMS(deg, decimals = 3) {
  let [h, m, s] = degToHMS(deg);
  let sText = s.toFixed(decimals);
  if (parseFloat(sText) >= 60) { // rounding carried into the next minute
    sText = (0).toFixed(decimals);
    m += 1;
    if (m === 60) { m = 0; h = (h + 1) % 24; }
  }
  const pad = (v, n) => String(v).padStart(n, "0");
  return `${pad(h, 2)}:${pad(m, 2)}:${sText.padStart(decimals ? 3 + decimals : 2, "0")}`;
}

/**
 * Elements of one planet at time T.
 * @param {string} name key of PLANET_ELEMENTS
 * @param {number} T Julian centuries of TT since J2000.0
 * @returns {{a:number,e:number,I:number,L:number,varpi:number,Omega:number}}
 */
export function elementsAt(name, T) {
  const row = PLANET_ELEMENTS[name];
  if (!row) throw new Error(`unknown planet ${name}; expected one of ${PLANETS.join(", ")}`);
  const [el, rate] = row;
  const v = el.map((x, i) => x + rate[i] * T);
  return { a: v[0], e: v[1], I: v[2], L: v[3], varpi: v[4], Omega: v[5] };
}

/**
 * Solve Kepler's equation E - e sin E = M (radians) by Newton's method.
 * @returns {number} eccentric anomaly E, radians
 */
export function solveKepler(M, e, tol = 1e-12) {
  const m = Math.atan2(Math.sin(M), Math.cos(M)); // to [-pi, pi]
  let E = e < 0.8 ? m : Math.PI * Math.sign(m || 1);
  for (let i = 0; i < 50; i++) {
    const dE = (E - e * Math.sin(E) - m) / (1 - e * Math.cos(E));
    E -= dE;
    if (Math.abs(dE) < tol) break;
  }
  return E;
}

/** Rotate orbital-plane coordinates (x' towards perihelion) into the J2000 ecliptic. */
function orbitalToEcliptic(xp, yp, el) {
  const w = (el.varpi - el.Omega) * D2R; // argument of perihelion
  const O = el.Omega * D2R;
  const I = el.I * D2R;
  const cw = Math.cos(w), sw = Math.sin(w), cO = Math.cos(O), sO = Math.sin(O);
  const cI = Math.cos(I), sI = Math.sin(I);
  return {
    x: (cw * cO - sw * sO * cI) * xp + (-sw * cO - cw * sO * cI) * yp,
    y: (cw * sO + sw * cO * cI) * xp + (-sw * sO + cw * cO * cI) * yp,
    z: (sw * sI) * xp + (cw * sI) * yp,
  };
}

/**
 * Heliocentric position of a planet, J2000 ecliptic, AU (JPL's recipe, steps 1-6).
 * @param {string} name key of PLANET_ELEMENTS
 * @param {number} ms JS time value (UTC)
 */
export function heliocentricEcliptic(name, ms) {
  const el = elementsAt(name, centuriesTT(ms));
  const M = wrap180(el.L - el.varpi) * D2R; // mean anomaly (Table 1 has no b, c, s, f terms)
  const E = solveKepler(M, el.e);
  const xp = el.a * (Math.cos(E) - el.e);
  const yp = el.a * Math.sqrt(1 - el.e * el.e) * Math.sin(E);
  return orbitalToEcliptic(xp, yp, el);
}

/** All planets at one instant: {mercury: {x, y, z}, ...}. */
export function planetPositions(ms) {
  const out = {};
  for (const name of PLANETS) out[name] = heliocentricEcliptic(name, ms);
  return out;
}

/**
 * Points of the osculating orbit at an instant (the ellipse of that instant's elements).
 * @returns {Array<{x:number,y:number,z:number}>} n points, AU, J2000 ecliptic
 */
export function orbitPoints(name, ms, n = 256) {
  const el = elementsAt(name, centuriesTT(ms));
  const b = el.a * Math.sqrt(1 - el.e * el.e);
  const pts = [];
  for (let i = 0; i < n; i++) {
    const E = (2 * Math.PI * i) / n;
    pts.push(orbitalToEcliptic(el.a * (Math.cos(E) - el.e), b * Math.sin(E), el));
  }
  return pts;
}

/** Longitude, latitude (deg) and length of a vector. */
export function toSpherical(v) {
  const r = Math.hypot(v.x, v.y, v.z);
  return { lon: wrap360(Math.atan2(v.y, v.x) * R2D), lat: Math.asin(v.z / r) * R2D, r };
}

/** J2000 ecliptic -> J2000 (ICRS-aligned) equatorial. */
export function eclipticToEquatorial(v, epsDeg = OBLIQUITY_J2000) {
  const c = Math.cos(epsDeg * D2R), s = Math.sin(epsDeg * D2R);
  return { x: v.x, y: c * v.y - s * v.z, z: s * v.y + c * v.z };
}

/** General precession in longitude since J2000 (IAU 1976, first two terms), degrees. */
export function precessionInLongitude(T) {
  return (5029.0966 * T + 1.11113 * T * T) / 3600;
}

// 3x3 matrices as arrays of rows.
function rotX(deg) {
  const c = Math.cos(deg * D2R), s = Math.sin(deg * D2R);
  return [[1, 0, 0], [0, c, -s], [0, s, c]];
}
function rotZ(deg) {
  const c = Math.cos(deg * D2R), s = Math.sin(deg * D2R);
  return [[c, -s, 0], [s, c, 0], [0, 0, 1]];
}
export function matMul(A, B) {
  return A.map((row) => [0, 1, 2].map((j) => row[0] * B[0][j] + row[1] * B[1][j] + row[2] * B[2][j]));
}
export function matVec(A, v) {
  return {
    x: A[0][0] * v.x + A[0][1] * v.y + A[0][2] * v.z,
    y: A[1][0] * v.x + A[1][1] * v.y + A[1][2] * v.z,
    z: A[2][0] * v.x + A[2][1] * v.y + A[2][2] * v.z,
  };
}
export function transpose(A) {
  return [0, 1, 2].map((i) => [A[0][i], A[1][i], A[2][i]]);
}

/**
 * Orientation of the Earth: the matrix that takes Earth-fixed vectors (x to lon 0 on the
 * equator, y to lon 90 E, z to the north pole) to the J2000 ecliptic frame.
 * Earth-fixed -> true-of-date equator: rotation by GMST about the pole (no nutation or
 * polar motion); -> mean ecliptic of date: obliquity; -> J2000 ecliptic: the precession
 * in longitude (the equinox of date lies at J2000 longitude -p). Good to about 0.01 deg
 * over 1800-2050, far better than a terminator can be seen.
 */
export function earthOrientation(ms) {
  const p = precessionInLongitude(centuriesTT(ms));
  return matMul(rotZ(-p), matMul(rotX(-OBLIQUITY_J2000), rotZ(gmstDeg(ms))));
}

/**
 * Where the Sun is overhead: geographic longitude (east positive, [-180, 180)) and
 * latitude, degrees, plus the unit vector towards the Sun from the Earth (J2000 ecliptic).
 * The Earth's position is the Earth-Moon barycentre of the elements (parallax < 0.002 deg).
 */
export function subsolarPoint(ms, earth = heliocentricEcliptic("earth", ms)) {
  const r = Math.hypot(earth.x, earth.y, earth.z);
  const sunDir = { x: -earth.x / r, y: -earth.y / r, z: -earth.z / r };
  const body = matVec(transpose(earthOrientation(ms)), sunDir);
  const s = toSpherical(body);
  return { lonDeg: wrap180(s.lon), latDeg: s.lat, sunDir };
}

/** Everything the page shows for one instant. */
export function solarSnapshot(ms) {
  const planets = planetPositions(ms);
  const gmst = gmstDeg(ms);
  const sub = subsolarPoint(ms, planets.earth);
  return {
    ms,
    iso: new Date(ms).toISOString(),
    jd: julianDate(ms),
    T: centuriesTT(ms),
    gmstDeg: gmst,
    gmstHours: gmst / 15,
    planets,
    subsolar: { lonDeg: sub.lonDeg, latDeg: sub.latDeg },
    sunDir: sub.sunDir,
    valid: ms >= VALID_FROM_MS && ms <= VALID_TO_MS,
  };
}
