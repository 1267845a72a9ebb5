// A procedurally built astronaut (three.js primitives only, no downloaded model) and its poses.
//
//   const a = buildAstronaut();  scene.add(a.root);
//   a.update(dt, {mode, lookAt: Vector3 | null});  // each frame
//   a.state -> {mode, headYaw, headPitch, cover, shake, handsOnVisor}
//
// Modes: "idle" (floats), "watching" (head turns to `lookAt`), "covering" (hands over the
// visor), "sad" (head down, shakes; call a.sad() to start one).

import * as THREE from "three";

const SUIT = 0xf1f3f7;
const TRIM = 0xb9c1d3;
const ACCENT = 0xff8a3d;

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const damp = (current, target, rate, dt) => current + (target - current) * (1 - Math.exp(-rate * dt));

function mat(color, opts = {}) {
  return new THREE.MeshStandardMaterial({ color, roughness: 0.55, metalness: 0.05, ...opts });
}

function capsule(radius, length, material) {
  const mesh = new THREE.Mesh(new THREE.CapsuleGeometry(radius, length, 8, 20), material);
  mesh.castShadow = true;
  return mesh;
}

/** One arm: shoulder pivot -> upper arm -> elbow pivot -> forearm -> glove (hangs along -y). */
function buildArm(side, suit, trim, glove) {
  const shoulder = new THREE.Group();
  shoulder.position.set(0.56 * side, 1.12, 0);
  const joint = new THREE.Mesh(new THREE.SphereGeometry(0.17, 20, 14), suit);
  shoulder.add(joint);
  const upper = capsule(0.13, 0.28, suit);
  upper.position.y = -0.23;
  shoulder.add(upper);
  const elbow = new THREE.Group();
  elbow.position.y = -0.46;
  shoulder.add(elbow);
  const ring = new THREE.Mesh(new THREE.TorusGeometry(0.125, 0.03, 8, 20), trim);
  ring.rotation.x = Math.PI / 2;
  elbow.add(ring);
  const fore = capsule(0.115, 0.24, suit);
  fore.position.y = -0.2;
  elbow.add(fore);
  const cuff = new THREE.Mesh(new THREE.CylinderGeometry(0.13, 0.13, 0.07, 20), mat(ACCENT));
  cuff.position.y = -0.36;
  elbow.add(cuff);
  const hand = new THREE.Group();
  hand.position.y = -0.47;
  elbow.add(hand);
  const palm = new THREE.Mesh(new THREE.SphereGeometry(0.13, 20, 14), glove);
  palm.scale.set(1, 1.15, 0.75);
  hand.add(palm);
  const thumb = capsule(0.045, 0.08, glove);
  thumb.position.set(-0.1 * side, 0.02, 0.04);
  thumb.rotation.z = 0.7 * side;
  hand.add(thumb);
  return { shoulder, elbow, hand, upperLength: 0.46, lowerLength: 0.47 };
}

function buildLeg(side, suit, trim, boot) {
  const hip = new THREE.Group();
  hip.position.set(0.2 * side, 0.28, 0);
  const thigh = capsule(0.16, 0.3, suit);
  thigh.position.y = -0.25;
  hip.add(thigh);
  const knee = new THREE.Group();
  knee.position.y = -0.5;
  hip.add(knee);
  const kneePad = new THREE.Mesh(new THREE.SphereGeometry(0.14, 16, 12), trim);
  kneePad.position.z = 0.06;
  knee.add(kneePad);
  const shin = capsule(0.145, 0.26, suit);
  shin.position.y = -0.22;
  knee.add(shin);
  const bootMesh = new THREE.Mesh(new THREE.BoxGeometry(0.3, 0.18, 0.42), boot);
  bootMesh.position.set(0, -0.48, 0.06);
  bootMesh.geometry.translate(0, 0, 0);
  knee.add(bootMesh);
  return { hip, knee };
}

/** Two-bone pose: quaternion of a limb hanging along -y whose end reaches `target` (limb-parent space). */
function reachPose(origin, target, l1, l2, bendAxisHint) {
  const toTarget = target.clone().sub(origin);
  const d = clamp(toTarget.length(), Math.abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3);
  const dir = toTarget.normalize();
  const base = new THREE.Quaternion().setFromUnitVectors(new THREE.Vector3(0, -1, 0), dir);
  const alpha = Math.acos(clamp((l1 * l1 + d * d - l2 * l2) / (2 * l1 * d), -1, 1));
  const inner = Math.acos(clamp((l1 * l1 + l2 * l2 - d * d) / (2 * l1 * l2), -1, 1));
  // swing the upper bone away from the line by alpha, around an axis perpendicular to it
  const axis = new THREE.Vector3().crossVectors(dir, bendAxisHint).normalize();
  const swing = new THREE.Quaternion().setFromAxisAngle(axis, alpha);
  const shoulderQ = swing.multiply(base);
  // the elbow bends the other way around the same axis, expressed in the upper bone's frame
  const localAxis = axis.clone().applyQuaternion(shoulderQ.clone().invert());
  const elbowQ = new THREE.Quaternion().setFromAxisAngle(localAxis, -(Math.PI - inner));
  return { shoulderQ, elbowQ };
}

export function buildAstronaut() {
  const suit = mat(SUIT, { roughness: 0.62 });
  const trim = mat(TRIM, { roughness: 0.4, metalness: 0.35 });
  const glove = mat(0xdfe4ee, { roughness: 0.7 });
  const boot = mat(0x8e97ab, { roughness: 0.5, metalness: 0.2 });

  const root = new THREE.Group(); // floats
  const body = new THREE.Group(); // shakes
  root.add(body);

  // torso, belt, chest panel
  const torso = capsule(0.44, 0.5, suit);
  torso.position.y = 0.8;
  torso.scale.set(1, 1, 0.82);
  body.add(torso);
  const belt = new THREE.Mesh(new THREE.TorusGeometry(0.4, 0.05, 10, 32), trim);
  belt.rotation.x = Math.PI / 2;
  belt.scale.set(1, 0.82, 1);
  belt.position.y = 0.46;
  body.add(belt);
  const panel = new THREE.Mesh(new THREE.BoxGeometry(0.42, 0.28, 0.1), mat(0xd6dbe6, { roughness: 0.35, metalness: 0.3 }));
  panel.position.set(0, 0.86, 0.36);
  body.add(panel);
  const lights = [];
  [0xff4f5e, 0x4fe3a1, 0x5cb8ff, 0xffd166].forEach((color, i) => {
    const led = new THREE.Mesh(
      new THREE.SphereGeometry(0.032, 12, 8),
      new THREE.MeshStandardMaterial({ color, emissive: color, emissiveIntensity: 1.4 }),
    );
    led.position.set(-0.135 + i * 0.09, 0.9, 0.42);
    body.add(led);
    lights.push(led);
  });
  const slot = new THREE.Mesh(new THREE.BoxGeometry(0.3, 0.05, 0.02), mat(0x39425a));
  slot.position.set(0, 0.8, 0.415);
  body.add(slot);
  const flag = new THREE.Mesh(new THREE.BoxGeometry(0.16, 0.1, 0.02), mat(ACCENT, { emissive: ACCENT, emissiveIntensity: 0.15 }));
  flag.position.set(0.3, 1.08, 0.31);
  flag.rotation.y = 0.45;
  body.add(flag);

  // backpack (life support) with tanks
  const pack = new THREE.Mesh(new THREE.BoxGeometry(0.78, 0.86, 0.34), mat(0xe3e7ef, { roughness: 0.5 }));
  pack.position.set(0, 0.92, -0.5);
  body.add(pack);
  for (const side of [-1, 1]) {
    const tank = capsule(0.11, 0.5, trim);
    tank.position.set(0.24 * side, 0.92, -0.72);
    body.add(tank);
  }
  const vent = new THREE.Mesh(new THREE.BoxGeometry(0.5, 0.1, 0.05), mat(0x39425a));
  vent.position.set(0, 1.2, -0.68);
  body.add(vent);

  // head: neck ring, helmet, visor, lamp, antenna
  const neck = new THREE.Mesh(new THREE.TorusGeometry(0.3, 0.07, 12, 32), trim);
  neck.rotation.x = Math.PI / 2;
  neck.position.y = 1.3;
  body.add(neck);
  const head = new THREE.Group();
  head.position.y = 1.66;
  body.add(head);
  const helmet = new THREE.Mesh(new THREE.SphereGeometry(0.5, 40, 28), mat(0xfafbfd, { roughness: 0.3, metalness: 0.1 }));
  helmet.castShadow = true;
  head.add(helmet);
  const visorMat = new THREE.MeshStandardMaterial({
    color: 0x14224a, roughness: 0.12, metalness: 0.85, emissive: 0x0b1840, emissiveIntensity: 0.6,
  });
  const visor = new THREE.Mesh(
    new THREE.SphereGeometry(0.505, 40, 24, Math.PI / 2 - 0.95, 1.9, Math.PI / 2 - 0.62, 1.12),
    visorMat,
  );
  head.add(visor);
  const rim = new THREE.Mesh(new THREE.TorusGeometry(0.43, 0.035, 10, 40, Math.PI * 1.2), trim);
  rim.position.z = 0.2;
  rim.rotation.z = -0.1 * Math.PI;
  rim.scale.set(1, 0.78, 1);
  head.add(rim);
  const glint = new THREE.Mesh(
    new THREE.CircleGeometry(0.07, 20),
    new THREE.MeshBasicMaterial({ color: 0xffffff, transparent: true, opacity: 0.55 }),
  );
  glint.position.set(-0.17, 0.13, 0.49);
  glint.scale.set(1.6, 0.7, 1);
  glint.rotation.set(-0.25, -0.35, 0.5);
  head.add(glint);
  const lamp = new THREE.Mesh(new THREE.CylinderGeometry(0.07, 0.07, 0.08, 16), trim);
  lamp.rotation.z = Math.PI / 2;
  lamp.position.set(0.5, 0.12, 0.05);
  head.add(lamp);
  for (const side of [-1, 1]) {
    const ear = new THREE.Mesh(new THREE.CylinderGeometry(0.12, 0.12, 0.07, 24), trim);
    ear.rotation.z = Math.PI / 2;
    ear.position.x = 0.49 * side;
    if (side === 1) ear.position.y = -0.05;
    head.add(ear);
  }
  const antenna = new THREE.Mesh(new THREE.CylinderGeometry(0.012, 0.012, 0.36, 8), trim);
  antenna.position.set(-0.3, 0.5, -0.1);
  antenna.rotation.z = 0.3;
  head.add(antenna);
  const tip = new THREE.Mesh(new THREE.SphereGeometry(0.035, 12, 8), new THREE.MeshStandardMaterial({ color: 0xff4f5e, emissive: 0xff4f5e, emissiveIntensity: 2 }));
  tip.position.set(-0.355, 0.67, -0.1);
  head.add(tip);

  const arms = [buildArm(-1, suit, trim, glove), buildArm(1, suit, trim, glove)];
  arms.forEach((a) => body.add(a.shoulder));
  const legs = [buildLeg(-1, suit, trim, boot), buildLeg(1, suit, trim, boot)];
  legs.forEach((l) => body.add(l.hip));

  // rest and covering poses (quaternions), computed once
  const poses = arms.map((a, i) => {
    const side = i === 0 ? -1 : 1;
    const rest = {
      shoulderQ: new THREE.Quaternion().setFromEuler(new THREE.Euler(0.15, 0, 0.32 * side)),
      elbowQ: new THREE.Quaternion().setFromEuler(new THREE.Euler(-0.45, 0, 0)),
    };
    const visorFront = new THREE.Vector3(0.13 * side, head.position.y + 0.03, 0.62);
    const cover = reachPose(a.shoulder.position, visorFront, a.upperLength, a.lowerLength, new THREE.Vector3(side, -0.6, 0).normalize());
    return { rest, cover };
  });

  const state = { mode: "idle", headYaw: 0, headPitch: 0, targetYaw: 0, cover: 0, shake: 0, handsOnVisor: false, time: 0 };
  let sadT = Infinity;

  const tmpA = new THREE.Vector3();
  const tmpB = new THREE.Vector3();

  function update(dt, { mode, lookAt }) {
    state.time += dt;
    sadT += dt;
    const t = state.time;
    state.mode = mode;

    // idle float (always on, a little calmer when busy)
    const calm = mode === "idle" ? 1 : 0.5;
    root.position.y = Math.sin(t * 1.1) * 0.12 * calm;
    root.rotation.z = Math.sin(t * 0.7) * 0.06 * calm;
    root.rotation.x = Math.sin(t * 0.5 + 1) * 0.04 * calm;

    // head
    let yaw = Math.sin(t * 0.45) * 0.25;
    let pitch = Math.sin(t * 0.6) * 0.05;
    if (mode === "watching" && lookAt) {
      head.getWorldPosition(tmpA);
      tmpB.copy(lookAt).sub(tmpA);
      const inv = new THREE.Quaternion();
      body.getWorldQuaternion(inv).invert();
      tmpB.applyQuaternion(inv);
      yaw = clamp(Math.atan2(tmpB.x, tmpB.z), -1.05, 1.05);
      pitch = clamp(-Math.atan2(tmpB.y, Math.hypot(tmpB.x, tmpB.z)), -0.5, 0.5);
    } else if (mode === "covering") {
      yaw = 0;
      pitch = 0.12;
    } else if (mode === "sad") {
      yaw = 0;
      pitch = 0.42;
    }
    state.targetYaw = yaw;
    state.headYaw = damp(state.headYaw, yaw, 9, dt);
    state.headPitch = damp(state.headPitch, pitch, 7, dt);
    head.rotation.set(state.headPitch, state.headYaw, 0, "YXZ");

    // sad shake: a decaying side-to-side wobble of the whole body
    const shake = sadT < 2.0 ? Math.sin(sadT * 16) * 0.32 * Math.exp(-sadT * 1.3) : 0;
    state.shake = shake;
    body.rotation.y = shake;
    body.rotation.z = shake * 0.3;
    body.position.y = mode === "sad" ? damp(body.position.y, -0.08, 4, dt) : damp(body.position.y, 0, 4, dt);
    visorMat.emissive.setHex(mode === "sad" ? 0x3a0d1c : 0x0b1840);

    // arms: blend rest -> cover; a small wave of the rest pose while idle
    state.cover = damp(state.cover, mode === "covering" ? 1 : 0, 8, dt);
    arms.forEach((a, i) => {
      const side = i === 0 ? -1 : 1;
      const p = poses[i];
      const restS = p.rest.shoulderQ.clone().multiply(
        new THREE.Quaternion().setFromEuler(new THREE.Euler(Math.sin(t * 0.9 + i) * 0.12, 0, Math.sin(t * 0.8 + i * 2) * 0.08 * side)),
      );
      const droop = mode === "sad" ? new THREE.Quaternion().setFromEuler(new THREE.Euler(0.1, 0, -0.2 * side)) : new THREE.Quaternion();
      a.shoulder.quaternion.copy(restS.multiply(droop)).slerp(p.cover.shoulderQ, state.cover);
      a.elbow.quaternion.copy(p.rest.elbowQ).slerp(p.cover.elbowQ, state.cover);
    });
    legs.forEach((l, i) => {
      l.hip.rotation.x = Math.sin(t * 0.8 + i * Math.PI) * 0.12 + 0.08;
      l.knee.rotation.x = 0.25 + Math.sin(t * 0.8 + i * Math.PI + 0.6) * 0.08;
    });
    lights.forEach((led, i) => { led.material.emissiveIntensity = 0.6 + 0.9 * (0.5 + 0.5 * Math.sin(t * 3 + i * 1.7)); });
    tip.material.emissiveIntensity = 1 + Math.sin(t * 4) * 0.8;

    // are both gloves in front of the visor? (read back from the scene graph)
    root.updateMatrixWorld(true);
    const visorCentre = new THREE.Vector3(0, 0.03, 0.55);
    head.localToWorld(visorCentre);
    state.handsOnVisor = arms.every((a) => a.hand.getWorldPosition(tmpA).distanceTo(visorCentre) < 0.3);
  }

  function sad() {
    sadT = 0;
  }

  return { root, head, update, sad, state };
}
