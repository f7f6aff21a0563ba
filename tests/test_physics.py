"""data/physics.py: the generator's rigid-body motion (Bullet) behaves like objects on a floor."""
import numpy as np
import pytest

from data.classes import class_id, class_parts
from data.physics import Body, Physics, launch_speed, mass, simulate_bodies
from data.render import Renderer, SceneObject
from data.synthetic import render_video

CUBE = class_id("cube", "rubber", "red")
CUBE2 = class_id("cube", "metal", "blue")
CYLINDER = class_id("cylinder", "rubber", "green")
METAL_CYLINDER = class_id("cylinder", "metal", "gray")
SMOOTH = Physics(floor="smooth")
SPHERE = class_id("sphere", "metal", "yellow")


def track(frames, cid) -> np.ndarray:
    """(T, 3) x, y, yaw of one body; NaN where it is not in the scene."""
    out = np.full((len(frames), 3), np.nan)
    for t, objects in enumerate(frames):
        for c, x, y, a in objects:
            if c == cid:
                out[t] = (x, y, a)
    return out


def speeds(xy) -> np.ndarray:
    return np.hypot(*np.diff(xy, axis=0).T)


@pytest.mark.parametrize("cid", [CUBE, CYLINDER, SPHERE])
def test_launched_object_slows_down_and_stops(cid):
    frames = simulate_bodies([Body(cid, np.array([-3.0, 0.0]), np.array([0.5, 0.0]))], 22)
    s = speeds(track(frames, cid)[:, :2])
    assert s[0] > 0.35  # it starts near its launch speed (0.5 per frame) ...
    assert (np.diff(s) <= 1e-6).all()  # ... never speeds up on its own ...
    if class_parts(cid)[0] == "sphere":
        assert s[-1] < 0.6 * s[0]  # ... a sphere rolls on, slowly losing speed ...
    else:
        assert s[-1] < 1e-3  # ... cubes and cylinders slide to a stop


def test_meeting_objects_exchange_momentum():
    """Head-on, elastic and without friction: the total momentum is kept and passes from the mover to
    the one hit; the light cube bounces back off the heavier cylinder (masses differ: this is no
    exchange of velocities)."""
    phys = Physics(friction=0.0, restitution=1.0, density=(3.0, 1.0))  # a metal cylinder, a rubber cube
    frames = simulate_bodies([Body(CUBE, np.array([-2.0, 0.0]), np.array([0.4, 0.0])),
                              Body(METAL_CYLINDER, np.array([1.0, 0.0]), np.zeros(2))], 22, phys)
    va, vb = np.diff(track(frames, CUBE)[:, :2], axis=0), np.diff(track(frames, METAL_CYLINDER)[:, :2], axis=0)
    ma, mb = mass(CUBE, phys), mass(METAL_CYLINDER, phys)
    assert mb > 2 * ma
    before = ma * va[0] + mb * vb[0]
    after = ma * va[-1] + mb * vb[-1]
    assert np.allclose(after, before, atol=0.03 * np.abs(before).max())
    assert vb[0, 0] == pytest.approx(0, abs=1e-4)  # the cylinder was still ...
    assert vb[-1, 0] == pytest.approx(2 * ma / (ma + mb) * 0.4, rel=0.1)  # ... and takes what an elastic hit gives
    assert va[-1, 0] < -0.1  # the cube came back


def test_still_object_that_is_hit_moves():
    frames = simulate_bodies([Body(CUBE, np.array([-3.0, 0.1]), np.array([0.9, 0.0])),
                              Body(SPHERE, np.array([0.0, 0.0]), np.zeros(2))], 22)
    s = track(frames, SPHERE)
    moved = np.hypot(*(s[:, :2] - s[0, :2]).T)
    hit = int(np.argmax(moved > 0.01))
    assert 2 <= hit <= 6  # still until the cube arrives (2.1 units to contact at 0.7-0.9 per frame) ...
    assert moved[-1] > 1.0  # ... then set moving


def test_glancing_hit_turns_a_cube_and_the_mask_shows_it():
    frames = simulate_bodies([Body(CUBE, np.array([-3.0, 0.45]), np.array([0.6, 0.0])),
                              Body(CUBE2, np.array([0.0, 0.0]), np.zeros(2))], 22)
    hit = track(frames, CUBE2)
    turned = abs(hit[-1, 2] - hit[0, 2])
    assert turned > 0.1  # radians about the vertical axis
    renderer = Renderer()
    x, y, yaw = hit[-1]
    _, as_simulated = renderer.render([SceneObject(CUBE2, x, y, yaw)])
    _, unturned = renderer.render([SceneObject(CUBE2, x, y, hit[0, 2])])
    assert (as_simulated == CUBE2).sum() > 100
    assert ((as_simulated == CUBE2) != (unturned == CUBE2)).sum() > 20


def test_same_bodies_same_motion_bit_for_bit():
    bodies = [Body(CUBE, np.array([-3.0, 0.3]), np.array([0.6, 0.0])), Body(SPHERE, np.array([0.0, 0.0]), np.zeros(2)),
              Body(CYLINDER, np.array([8.0, 2.0]), np.array([-0.7, 0.0]), enter_frame=4)]
    first = simulate_bodies(bodies, 22)
    simulate_bodies([Body(CUBE2, np.array([1.0, 1.0]), np.array([0.0, 0.3]))], 22)  # another scene between
    assert simulate_bodies(bodies, 22) == first
    _, masks = render_video(0, 3)
    render_video(0, 4)
    _, again = render_video(0, 3)
    assert masks.tobytes() == again.tobytes()


def test_entering_body_joins_at_its_frame():
    frames = simulate_bodies([Body(CYLINDER, np.array([8.0, 2.0]), np.array([-0.7, 0.0]), enter_frame=5)], 12)
    present = [any(c == CYLINDER for c, *_ in objects) for objects in frames]
    assert present == [False] * 5 + [True] * 7


def _final_places(bodies, nudge_at=None, eps=0.0, seed=0):
    """{index: (x, y)} at frame 22, the states moved by up to eps at frame nudge_at; and the indices of
    bodies that touched another one after that frame."""
    out = {}

    def hook(t, world, waiting):
        if t == nudge_at:
            world.touched = set()
            rng = np.random.default_rng(seed)
            for k in world.keys():
                world.set_state(k, world.state(k).nudged(rng, eps))
        if t == 21:
            out.update({k: world.pose(k)[:2] for k in world.keys()})
            out["touched"] = set(world.touched or ())

    simulate_bodies(bodies, 22, SMOOTH, until=hook)
    return out


@pytest.mark.parametrize("cid", [CUBE, CYLINDER, SPHERE])
@pytest.mark.parametrize("spin", [0.0, 0.4])
def test_free_motion_is_smooth_from_launch(cid, spin):
    """A body that touches nothing ends where a tiny change of its launch state says, no further: a
    1e-6 nudge moves its frame-22 place by far less than 1e-4 (slowing to a stop, spinning or rolling)."""
    bodies = [Body(cid, np.array([-2.0, 0.5]), np.array([0.45, 0.12]), angle=0.3, spin=spin)]
    base, nudged = _final_places(bodies, 0, 0.0), _final_places(bodies, 0, 1e-6)
    assert np.hypot(*(base[0] - bodies[0].pos)) > 1.0  # it did move
    assert np.hypot(*(base[0] - nudged[0])) < 1e-4


@pytest.mark.parametrize("cid", [CUBE, CYLINDER, SPHERE])
def test_free_motion_is_smooth_after_a_hit(cid):
    """After a glancing hit (which turns and spins cubes and cylinders, and leaves a sphere sliding with
    spin that does not match its speed), both bodies slide apart; a 1e-6 nudge of their states then
    moves their frame-22 places by less than 1e-4."""
    bodies = [Body(CUBE2, np.array([-3.0, 0.55]), np.array([0.8, 0.0])), Body(cid, np.array([0.0, 0.0]), np.zeros(2))]
    base, nudged = _final_places(bodies, 8, 0.0), _final_places(bodies, 8, 1e-6)
    assert np.hypot(*base[1]) > 0.2  # the still body was hit and moved ...
    assert not nudged["touched"]  # ... and they no longer touch after the nudge
    for k in (0, 1):
        assert np.hypot(*(base[k] - nudged[k])) < 1e-4


def test_state_round_trip_continues_identically():
    """Reading every body's state and writing it back changes nothing: re-simulation from a frame's
    state is exact."""
    bodies = [Body(CUBE, np.array([-3.0, 0.3]), np.array([0.6, 0.0]), spin=0.2),
              Body(SPHERE, np.array([0.0, 0.0]), np.zeros(2))]
    plain, rewritten = _final_places(bodies), _final_places(bodies, 5, 0.0)  # eps 0: states read and written back
    for k in (0, 1):
        assert np.array_equal(plain[k], rewritten[k])


@pytest.mark.parametrize("drag", [0.0, 0.6])
def test_launch_speed_arrives_with_the_speed_asked(drag):
    """A cube launched at launch_speed(d, u) on the smooth floor passes distance d at about speed u
    (Coulomb friction, with and without drag)."""
    phys = Physics(floor="smooth", floor_friction=0.4, drag=drag)
    d, u = 3.0, 0.2
    v0 = launch_speed(d, u, phys)
    x = track(simulate_bodies([Body(CUBE, np.array([-3.0, 0.0]), np.array([v0, 0.0]))], 22, phys), CUBE)[:, 0] + 3.0
    k = int(np.argmax(x >= d))
    assert 0 < k < 21
    assert np.diff(x)[k - 1] == pytest.approx(u, abs=0.04)  # the speed over the frame that crosses d
