"""Rigid-body motion of a synthetic scene: objects sliding on a floor and colliding (Bullet).

Cubes, spheres and cylinders at the renderer's sizes (data/render.py: ObjectSizes) stand on a
floor (floor units, z = 0). Collisions between objects are Bullet's (pybullet, no GUI): 3D rigid
bodies with masses by volume, restitution and friction at the contact, so a glancing hit turns a
cube about the vertical axis. The floor is one of two (Physics.floor):

"bullet" (the "clevr" world's, data/synthetic.py: WORLDS; generator version 2 made its videos
with it): a Bullet plane under gravity, with Coulomb friction at its contact points, rolling
friction for spheres, and a very large inertia about the horizontal axes that keeps cubes and
cylinders upright.

"smooth" (the "real" and "random" worlds'): the floor is not a Bullet body: bodies are kept upright
at their resting height, and the floor's friction is applied here, in closed form, at every step:
  - cubes and cylinders slide with Coulomb friction (speed falls by mu g per second until they
    stop), and friction shares itself between their sliding and their spin about the vertical
    axis, so that both stop together (spin_radius);
  - a sphere slides until friction has matched its rolling to its speed (its rolling speed rises
    by 5/2 mu g per second while it slides), then rolls on, slowed by rolling friction;
  - a drag takes a share of every speed per second, so that sliding slows gradually.
Why: Bullet's floor contacts (a cylinder's rim, a box's corners, their friction anchors) make
some bodies that touch nothing sensitive to tiny changes of their state; on the smooth floor a
body alone moves as a smooth function of its state (scripts/analysis/predictability.py measures both).

Every scene runs in a fresh simulation with a fixed time step and a fixed order of calls, so the
same bodies give bit-identical motion, in any process. One DIRECT client serves each process.
"""
import os
import sys
from dataclasses import dataclass

import numpy as np

from data.classes import class_parts
from data.render import SIZES, ObjectSizes

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
    """The engine's settings. Floor units; a frame lasts frame_time seconds of simulated time."""

    gravity: float = 9.81
    frame_time: float = 0.1  # simulated seconds per video frame
    steps_per_frame: int = 24  # Bullet steps per frame (1/240 s each at frame_time 0.1)
    friction: float = 0.7  # Coulomb friction, object-floor and object-object
    rolling_friction: float = 0.06  # slows rolling spheres (units of length: deceleration 5/7 g x this / radius)
    restitution: float = 0.6  # object-object bounce (Bullet multiplies the two bodies')
    density: tuple = (1.0, 1.0)  # (metal, rubber): mass = density x volume
    # "bullet": the floor is a Bullet plane under gravity (generator version 2's videos; chaotic
    # free motion, see the module's help); "smooth": the floor's friction in closed form
    floor: str = "bullet"
    # the smooth floor only: its Coulomb friction (None: `friction`, which object-object contacts
    # keep), and a drag that takes this share of a body's speed per second (rolling resistance and
    # air together: sliding slows gradually, as the real objects do, instead of at one rate to a stop)
    floor_friction: float = None
    drag: float = 0.0

    @property
    def floor_mu(self) -> float:
        """The floor's Coulomb friction: floor_friction on the smooth floor when given, else friction."""
        return self.friction if self.floor == "bullet" or self.floor_friction is None else self.floor_friction


@dataclass
class Body:
    """One object of a scene: its class, where it starts and how it is launched (floor units,
    per frame), its yaw and spin (radians, per frame), and the frame at which it joins the scene
    (later ones slide in)."""

    class_id: int
    pos: np.ndarray  # (2,)
    vel: np.ndarray  # (2,) floor units per frame
    angle: float = 0.0
    enter_frame: int = 0
    spin: float = 0.0  # radians per frame about the vertical axis


@dataclass
class BodyState:
    """The full state of a body in the world, in floor units and seconds: enough to go on from it."""

    pos: np.ndarray  # (2,)
    yaw: float
    vel: np.ndarray  # (2,) units per second
    spin: float  # radians per second
    roll: np.ndarray  # (2,) a sphere's rolling speed (spin x radius, as a floor velocity); zero otherwise
    # on the Bullet floor a body also has a height, a tilt, a vertical speed and spin about the
    # horizontal axes (a rolling sphere's rolling is there): kept so that nothing is lost
    z: float = None
    tilt: tuple = (0.0, 0.0)  # Euler angles about x and y
    vz: float = 0.0
    ang_xy: tuple = (0.0, 0.0)

    def nudged(self, rng, eps: float) -> "BodyState":
        """This state with every component moved by up to eps: positions in floor units, angles in
        radians, velocities relative to their size (the height and tilt are left as they are)."""
        u = lambda n: rng.uniform(-eps, eps, n)  # noqa: E731
        return BodyState(self.pos + u(2), self.yaw + float(u(1)[0]), self.vel * (1 + u(2)),
                         self.spin * (1 + float(u(1)[0])), self.roll * (1 + u(2)), self.z, self.tilt,
                         self.vz * (1 + float(u(1)[0])), tuple(np.asarray(self.ang_xy) * (1 + u(2))))


_CLIENT = {}  # pid -> pybullet client: forked workers must not share their parent's


def _client(pb) -> int:
    pid = os.getpid()
    if pid not in _CLIENT:
        _CLIENT[pid] = pb.connect(pb.DIRECT)
    return _CLIENT[pid]


def volume(shape: str, sizes: ObjectSizes = SIZES) -> float:
    if shape == "cube":
        return (2 * sizes.cube_half) ** 3
    if shape == "sphere":
        return 4 / 3 * np.pi * sizes.sphere_radius**3
    return np.pi * sizes.cylinder_radius**2 * sizes.cylinder_height


def mass(class_id: int, phys: "Physics", sizes: ObjectSizes = SIZES) -> float:
    """A body's mass: its material's density times its shape's volume."""
    shape, material, _ = class_parts(class_id)
    return phys.density[0 if material == "metal" else 1] * volume(shape, sizes)


def spin_radius(shape: str, sizes: ObjectSizes = SIZES) -> float:
    """The radius rho at which a cube's or cylinder's spin counts as a speed against the floor.

    Friction on a base that slides at v and spins at w opposes each point's own velocity, so a
    fast slide leaves little friction to stop the spin, and the other way round (Contensou). Here
    the vector (v_x, v_y, w rho) shrinks by mu g per second along itself: both stop together, and
    a spin alone stops at mu g / rho, the rate of friction spread evenly over the base (its torque
    mu m g x the mean distance of the base's points from its centre, over the moment of inertia):
    rho = I / (m x mean distance)."""
    if shape == "cube":  # square of half side a: mean distance 0.7652 a, I = 2/3 m a^2
        a = sizes.cube_half
        return (2 / 3 * a * a) / (0.7652 * a)
    r = sizes.cylinder_radius  # disc: mean distance 2/3 r, I = 1/2 m r^2
    return (0.5 * r * r) / (2 / 3 * r)


def floor_deceleration(phys: Physics) -> float:
    """The floor's Coulomb deceleration, floor units per second^2: mu g."""
    return phys.floor_mu * phys.gravity


def launch_speed(distance: float, arrival: float, phys: Physics) -> float:
    """The speed (units per frame) that brings a sliding body `distance` units with `arrival` left,
    under the floor's friction and drag (no drag: v0^2 = u^2 + 2 a d)."""
    a = floor_deceleration(phys) * phys.frame_time**2  # units per frame^2
    c = (phys.drag if phys.floor == "smooth" else 0.0) * phys.frame_time  # per frame
    if c <= 0:
        return float(np.sqrt(arrival**2 + 2 * a * distance))

    def covered(v0):  # dv/dt = -a - c v: distance until the speed is down to `arrival`
        t = np.log((v0 + a / c) / (arrival + a / c)) / c
        return (v0 - arrival) / c - a / c * t
    lo, hi = arrival, arrival + 1.0
    while covered(hi) < distance:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if covered(mid) < distance else (lo, mid)
    return float(hi)


def _shrink(v: np.ndarray, by: float) -> np.ndarray:
    """v moved towards zero by `by` along its own direction, never past zero."""
    n = float(np.sqrt(v @ v))
    return v * (1 - by / n) if n > by else np.zeros_like(v)


class World:
    """The bodies of one scene in one Bullet simulation, stepped a frame at a time.

    Bodies are keyed by the caller's keys; `state`/`set_state` read and replace a body's full
    state (BodyState), which is how a scene is re-simulated from one of its frames."""

    def __init__(self, phys: Physics = Physics(), sizes: ObjectSizes = SIZES):
        self.pb = pb = _import_pybullet()
        self.cid = cid = _client(pb)
        self.phys, self.sizes = phys, sizes
        self.dt = phys.frame_time / phys.steps_per_frame
        pb.resetSimulation(physicsClientId=cid)
        pb.setPhysicsEngineParameter(fixedTimeStep=self.dt, numSolverIterations=20,
                                     deterministicOverlappingPairs=1, physicsClientId=cid)
        if phys.floor not in ("bullet", "smooth"):
            raise ValueError(f"Physics.floor is 'bullet' or 'smooth', got {phys.floor!r}")
        self.smooth = phys.floor == "smooth"
        if self.smooth:
            pb.setGravity(0, 0, 0, physicsClientId=cid)  # the floor carries the weight: see the module's help
        else:
            pb.setGravity(0, 0, -phys.gravity, physicsClientId=cid)
            floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cid),
                                       physicsClientId=cid)
            pb.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, physicsClientId=cid)
        self.uid, self.shape, self.z, self.roll, self.rho = {}, {}, {}, {}, {}
        self.touched = None  # a set: the keys of bodies that touched another one since it was set

    def add(self, key, body: Body):
        pb, cid, sz, phys = self.pb, self.cid, self.sizes, self.phys
        shape = class_parts(body.class_id)[0]
        if shape == "cube":
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[sz.cube_half] * 3, physicsClientId=cid)
        elif shape == "sphere":
            col = pb.createCollisionShape(pb.GEOM_SPHERE, radius=sz.sphere_radius, physicsClientId=cid)
        else:
            col = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=sz.cylinder_radius, height=sz.cylinder_height,
                                          physicsClientId=cid)
        z = sz.top(shape) / 2
        m = mass(body.class_id, phys, sz)
        uid = pb.createMultiBody(m, col, basePosition=[body.pos[0], body.pos[1], z],
                                 baseOrientation=pb.getQuaternionFromEuler([0.0, 0.0, body.angle]),
                                 physicsClientId=cid)
        if shape == "cube":  # (parenthesised as version 2 computed it: the same bits give the same videos)
            izz = m * (sz.cube_half**2 * 2 / 3)
        elif shape == "sphere":
            izz = m * (sz.sphere_radius**2 * 2 / 5)
        else:
            izz = m * (sz.cylinder_radius**2 / 2)
        # contactProcessingThreshold 0: Bullet's speculative contacts (made before bodies touch) would
        # otherwise take the bounce out of every hit but box-box ones
        dyn = dict(lateralFriction=phys.friction, restitution=phys.restitution, linearDamping=0.0,
                   angularDamping=0.0, contactProcessingThreshold=0.0, physicsClientId=cid)
        if self.smooth:
            # upright for good: a huge inertia about x and y (and their spin is cleared every step);
            # no sleeping: a body put to sleep stops at a moment that a tiny change of its state moves
            dyn.update(localInertiaDiagonal=[1e6 * m, 1e6 * m, izz], activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING)
            if shape == "sphere":
                self.roll[key] = np.zeros(2)
            else:
                self.rho[key] = spin_radius(shape, sz)
        elif shape == "sphere":
            dyn["rollingFriction"] = phys.rolling_friction
        else:  # upright for good on the Bullet floor too; spheres keep their true inertia to roll
            dyn["localInertiaDiagonal"] = [1e6 * m, 1e6 * m, izz]
        pb.changeDynamics(uid, -1, **dyn)
        fps = 1.0 / phys.frame_time
        pb.resetBaseVelocity(uid, linearVelocity=[body.vel[0] * fps, body.vel[1] * fps, 0.0],
                             angularVelocity=[0, 0, body.spin * fps], physicsClientId=cid)
        self.uid[key], self.shape[key], self.z[key] = uid, shape, z

    def remove(self, key):
        self.pb.removeBody(self.uid.pop(key), physicsClientId=self.cid)
        for d in (self.shape, self.z, self.roll, self.rho):
            d.pop(key, None)

    def keys(self) -> list:
        return list(self.uid)

    def pose(self, key) -> np.ndarray:
        """(x, y, yaw) of a body."""
        pos, quat = self.pb.getBasePositionAndOrientation(self.uid[key], physicsClientId=self.cid)
        return np.array([pos[0], pos[1], self.pb.getEulerFromQuaternion(quat)[2]])

    def state(self, key) -> BodyState:
        pb, cid = self.pb, self.cid
        pos, quat = pb.getBasePositionAndOrientation(self.uid[key], physicsClientId=cid)
        tx, ty, yaw = pb.getEulerFromQuaternion(quat)
        lin, ang = pb.getBaseVelocity(self.uid[key], physicsClientId=cid)
        s = BodyState(np.array(pos[:2]), float(yaw), np.array(lin[:2]), float(ang[2]), self.roll.get(key, np.zeros(2)).copy())
        if not self.smooth:
            s.z, s.tilt, s.vz, s.ang_xy = float(pos[2]), (tx, ty), float(lin[2]), (ang[0], ang[1])
        return s

    def set_state(self, key, s: BodyState):
        pb, cid = self.pb, self.cid
        z = self.z[key] if s.z is None or self.smooth else s.z
        tilt = (0.0, 0.0) if self.smooth else s.tilt
        ang_xy = (0.0, 0.0) if self.smooth else s.ang_xy
        pb.resetBasePositionAndOrientation(self.uid[key], [s.pos[0], s.pos[1], z],
                                           pb.getQuaternionFromEuler([tilt[0], tilt[1], s.yaw]), physicsClientId=cid)
        pb.resetBaseVelocity(self.uid[key], linearVelocity=[s.vel[0], s.vel[1], 0.0 if self.smooth else s.vz],
                             angularVelocity=[ang_xy[0], ang_xy[1], s.spin], physicsClientId=cid)
        if self.shape[key] == "sphere":
            self.roll[key] = np.array(s.roll, float)

    def _floor(self):
        """One step of the floor's friction on every body (see the module's help)."""
        pb, cid, phys, dt = self.pb, self.cid, self.phys, self.dt
        mu_g_dt = floor_deceleration(phys) * dt
        keep = np.exp(-phys.drag * dt)
        for key, uid in self.uid.items():
            lin, ang = pb.getBaseVelocity(uid, physicsClientId=cid)
            v = np.array(lin[:2])
            spin = ang[2]
            if self.shape[key] == "sphere":
                roll = self.roll[key]
                slip = v - roll
                slip_speed = float(np.hypot(*slip))
                if slip_speed > 3.5 * mu_g_dt:  # sliding: friction against the slip ...
                    d = slip / slip_speed
                    v = v - mu_g_dt * d
                    roll = roll + 2.5 * mu_g_dt * d
                else:  # ... until the sphere rolls: then rolling friction slows it
                    v = _shrink((2 * v + 5 * roll) / 7 if slip_speed > 0 else v,
                                5 / 7 * phys.gravity * phys.rolling_friction / self.sizes.sphere_radius * dt)
                    roll = v.copy()
                v, roll = v * keep, roll * keep
                self.roll[key] = roll
                spin = 0.0  # a sphere's own turning is not drawn; its rolling is kept in roll
            else:
                rho = self.rho[key]
                v3 = _shrink(np.array([v[0], v[1], spin * rho]), mu_g_dt)
                v, spin = v3[:2] * keep, float(v3[2] / rho) * keep
            pb.resetBaseVelocity(uid, linearVelocity=[v[0], v[1], 0.0], angularVelocity=[0.0, 0.0, spin],
                                 physicsClientId=cid)

    def step_frame(self):
        pb, cid = self.pb, self.cid
        for _ in range(self.phys.steps_per_frame):
            if self.smooth:
                self._floor()
            pb.stepSimulation(physicsClientId=cid)
            if self.touched is not None:
                contacts = pb.getContactPoints(physicsClientId=cid)
                if contacts:
                    key_of = {uid: key for key, uid in self.uid.items()}
                    for c in contacts:  # body against body: the Bullet floor's contacts do not count
                        if c[1] in key_of and c[2] in key_of:
                            self.touched.update((key_of[c[1]], key_of[c[2]]))
        for key, uid in (self.uid.items() if self.smooth else ()):  # a slanted hit may lift or tilt a body: put it back
            pos, quat = pb.getBasePositionAndOrientation(uid, physicsClientId=cid)
            roll_x, pitch_y, yaw = pb.getEulerFromQuaternion(quat)
            if abs(pos[2] - self.z[key]) > 1e-7 or abs(roll_x) > 1e-7 or abs(pitch_y) > 1e-7:
                pb.resetBasePositionAndOrientation(uid, [pos[0], pos[1], self.z[key]],
                                                   pb.getQuaternionFromEuler([0.0, 0.0, yaw]), physicsClientId=cid)


def simulate_bodies(bodies: list, n_frames: int, phys: Physics = Physics(), sizes: ObjectSizes = SIZES,
                    until=None) -> list:
    """[frame] -> [(class_id, x, y, yaw)] of the bodies in the scene at that frame.

    A body joins at its enter_frame, or as soon after as its place is free; one that passes under
    the camera or goes far away leaves for good. `until(t, world, waiting)`, if given, is called
    after frame t is recorded, with the world (to read or change its bodies' states; keys are
    indices in bodies) and the list of indices of bodies yet to join (to drop some of them)."""
    world = World(phys, sizes)
    spacing = 2.2 * sizes.max_reach
    waiting = sorted(range(len(bodies)), key=lambda i: bodies[i].enter_frame)
    frames = []
    for t in range(n_frames):
        state = {i: world.pose(i) for i in world.keys()}
        for i in [i for i in waiting if bodies[i].enter_frame <= t]:
            # an entering body waits until its way in is free
            if all(np.hypot(*(bodies[i].pos - s[:2])) > spacing for s in state.values()):
                world.add(i, bodies[i])
                state[i] = np.array([*bodies[i].pos, bodies[i].angle])
                waiting.remove(i)
        for i, s in list(state.items()):
            if s[1] < NEAR_LIMIT or np.hypot(s[0], s[1]) > FAR_LIMIT:
                world.remove(i)
                del state[i]
        frames.append([(bodies[i].class_id, float(s[0]), float(s[1]), float(s[2])) for i, s in sorted(state.items())])
        if until is not None:
            until(t, world, waiting)
        if t + 1 < n_frames:
            world.step_frame()
    return frames
