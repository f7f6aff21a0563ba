"""Rigid-body motion of a synthetic scene, simulated by Bullet (pybullet, no GUI).

Cubes, spheres and cylinders at the renderer's sizes stand on a floor plane (z = 0, the floor
units of data/render.py) under gravity. They slide with Coulomb friction (cubes and cylinders
decelerate at a constant rate and stop), spheres roll once friction has matched their spin to
their speed, and objects that meet collide as 3D rigid bodies: masses by volume, restitution,
friction at the contact, so a glancing hit turns a cube about the vertical axis.

Cubes and cylinders are given a very large inertia about the horizontal axes: the renderer draws
upright objects only, and CLEVRER-like objects never tip over.

Every scene runs in a fresh simulation with a fixed time step and a fixed order of calls, so the
same bodies give bit-identical motion, in any process. One DIRECT client serves each process.
"""
import os
import sys
from dataclasses import dataclass

import numpy as np

from data.classes import class_parts
from data.render import CUBE_HALF, CYLINDER_HEIGHT, OBJECT_RADIUS

NEAR_LIMIT = -7.0  # floor y below which a body has passed under the camera (at y = -10.1): it is dropped
FAR_LIMIT = 40.0  # a body this far from the origin never comes back into view: it is dropped


def _import_pybullet():
    """pybullet writes its build time to stderr on import; keep the scripts' output clean."""
    if "pybullet" in sys.modules:  # imported already: nothing to hide
        return sys.modules["pybullet"]
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import pybullet
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return pybullet


@dataclass(frozen=True)
class Physics:
    """Bullet's settings. Floor units; a frame lasts frame_time seconds of simulated time."""

    gravity: float = 9.81
    frame_time: float = 0.1  # simulated seconds per video frame
    steps_per_frame: int = 24  # Bullet steps per frame (1/240 s each at frame_time 0.1)
    friction: float = 0.7  # Coulomb friction, object-floor and object-object
    rolling_friction: float = 0.06  # slows rolling spheres a little (units of length)
    restitution: float = 0.6  # object-object bounce (Bullet multiplies the two bodies'); the floor's is 0
    linear_damping: float = 0.0  # Bullet's velocity damping per second, on top of friction
    density: tuple = (1.0, 1.0)  # (metal, rubber): mass = density x volume


@dataclass
class Body:
    """One object of a scene: its class, where it starts and how it is launched (floor units,
    per frame), its yaw, and the frame at which it joins the scene (later ones slide in)."""

    class_id: int
    pos: np.ndarray  # (2,)
    vel: np.ndarray  # (2,) floor units per frame
    angle: float = 0.0
    enter_frame: int = 0


_CLIENT = {}  # pid -> pybullet client: forked workers must not share their parent's


def _client(pb) -> int:
    pid = os.getpid()
    if pid not in _CLIENT:
        _CLIENT[pid] = pb.connect(pb.DIRECT)
    return _CLIENT[pid]


def mass(class_id: int, phys: "Physics") -> float:
    """A body's mass: its material's density times its shape's volume."""
    shape, material, _ = class_parts(class_id)
    if shape == "cube":
        volume = (2 * CUBE_HALF) ** 3
    elif shape == "sphere":
        volume = 4 / 3 * np.pi * OBJECT_RADIUS**3
    else:
        volume = np.pi * OBJECT_RADIUS**2 * CYLINDER_HEIGHT
    return phys.density[0 if material == "metal" else 1] * volume


def _create(pb, cid, body: Body, phys: Physics) -> int:
    shape = class_parts(body.class_id)[0]
    if shape == "cube":
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[CUBE_HALF] * 3, physicsClientId=cid)
        z = CUBE_HALF
    elif shape == "sphere":
        col = pb.createCollisionShape(pb.GEOM_SPHERE, radius=OBJECT_RADIUS, physicsClientId=cid)
        z = OBJECT_RADIUS
    else:
        col = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=OBJECT_RADIUS, height=CYLINDER_HEIGHT,
                                      physicsClientId=cid)
        z = CYLINDER_HEIGHT / 2
    m = mass(body.class_id, phys)
    quat = pb.getQuaternionFromEuler([0.0, 0.0, body.angle])
    uid = pb.createMultiBody(m, col, basePosition=[body.pos[0], body.pos[1], z], baseOrientation=quat,
                             physicsClientId=cid)
    # contactProcessingThreshold 0: Bullet's speculative contacts (made before bodies touch) would
    # otherwise take the bounce out of every hit but box-box ones
    dyn = dict(lateralFriction=phys.friction, restitution=phys.restitution, linearDamping=phys.linear_damping,
               angularDamping=0.0, contactProcessingThreshold=0.0, physicsClientId=cid)
    if shape == "sphere":
        dyn["rollingFriction"] = phys.rolling_friction
    else:
        # upright for good: a huge inertia about x and y, the true one about the vertical axis
        izz = m * (CUBE_HALF**2 * 2 / 3 if shape == "cube" else OBJECT_RADIUS**2 / 2)
        dyn["localInertiaDiagonal"] = [1e6 * m, 1e6 * m, izz]
    pb.changeDynamics(uid, -1, **dyn)
    fps = 1.0 / phys.frame_time
    pb.resetBaseVelocity(uid, linearVelocity=[body.vel[0] * fps, body.vel[1] * fps, 0.0], angularVelocity=[0, 0, 0],
                         physicsClientId=cid)
    return uid


def simulate_bodies(bodies: list, n_frames: int, phys: Physics = Physics()) -> list:
    """[frame] -> [(class_id, x, y, yaw)] of the bodies in the scene at that frame.

    A body joins at its enter_frame, or as soon after as its place is free; one that passes under
    the camera or goes far away leaves for good."""
    pb = _import_pybullet()
    cid = _client(pb)
    pb.resetSimulation(physicsClientId=cid)
    pb.setPhysicsEngineParameter(fixedTimeStep=phys.frame_time / phys.steps_per_frame, numSolverIterations=20,
                                 deterministicOverlappingPairs=1, physicsClientId=cid)
    pb.setGravity(0, 0, -phys.gravity, physicsClientId=cid)
    floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cid), physicsClientId=cid)
    pb.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, physicsClientId=cid)
    live = {}  # index in bodies -> Bullet id
    waiting = sorted(range(len(bodies)), key=lambda i: bodies[i].enter_frame)
    frames = []
    for t in range(n_frames):
        state = {i: _pose(pb, cid, uid) for i, uid in live.items()}
        for i in [i for i in waiting if bodies[i].enter_frame <= t]:
            # an entering body waits until its way in is free
            if all(np.hypot(*(bodies[i].pos - s[:2])) > 2.2 * OBJECT_RADIUS for s in state.values()):
                live[i] = _create(pb, cid, bodies[i], phys)
                state[i] = np.array([*bodies[i].pos, bodies[i].angle])
                waiting.remove(i)
        for i, s in list(state.items()):
            if s[1] < NEAR_LIMIT or np.hypot(s[0], s[1]) > FAR_LIMIT:
                pb.removeBody(live.pop(i), physicsClientId=cid)
                del state[i]
        frames.append([(bodies[i].class_id, float(s[0]), float(s[1]), float(s[2])) for i, s in sorted(state.items())])
        if t + 1 < n_frames:
            for _ in range(phys.steps_per_frame):
                pb.stepSimulation(physicsClientId=cid)
    return frames


def _pose(pb, cid, uid) -> np.ndarray:
    pos, quat = pb.getBasePositionAndOrientation(uid, physicsClientId=cid)
    return np.array([pos[0], pos[1], pb.getEulerFromQuaternion(quat)[2]])
