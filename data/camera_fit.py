"""Fit the camera and the objects' dimensions to masks: the real renderer's physical constants.

Each observation (data/geometry.py: one wholly visible object in one frame) says where an object
was seen (its mask's centroid) and how it looked there (sqrt(area), box width and height). For a
candidate camera and object sizes, the object is put on the floor where its drawn mask's centroid
falls on the observed one, drawn alone with the renderer, and measured the same way; the fit
minimises the relative size and box errors over all observations (a robust loss: objects partly
hidden behind another look smaller than they are). Cubes are drawn at the yaw (of a few) whose box
matches best, since a mask does not say how a cube is turned.

The camera keeps its distance from the floor's origin (it sets the scale of the floor units, in
which the generator's speeds are calibrated); its height, the floor point it looks at (so its
pitch) and its field of view are fitted.
"""
from dataclasses import asdict

import numpy as np

from data.geometry import BOX_H, BOX_W, COL, ROW, SHAPE, SIZE, size_line
from data.render import Camera, CameraSpec, ObjectSizes, Renderer, SceneObject

SHAPE_CLASS = (1, 17, 33)  # a class of each shape (cube, sphere, cylinder): color does not change a mask
CUBE_YAWS = np.radians([0.0, 11.25, 22.5, 33.75])  # a cube's box repeats every 90 degrees, mirrored at 45
PARAMS = ("height", "hfov_deg", "look_y", "cube_half", "sphere_radius", "cylinder_radius", "cylinder_height")


def split(p, distance: float) -> tuple:
    """Parameter vector (PARAMS order) -> (CameraSpec, ObjectSizes)."""
    return (CameraSpec(height=float(p[0]), distance=distance, hfov_deg=float(p[1]), look_y=float(p[2])),
            ObjectSizes(*map(float, p[3:7])))


def join(camera: CameraSpec, sizes: ObjectSizes) -> np.ndarray:
    return np.array([camera.height, camera.hfov_deg, camera.look_y, *asdict(sizes).values()], np.float64)


def _floor_point(cam: Camera, row: float, col: float, z: float) -> np.ndarray:
    """Where the ray through pixel (row, col) (pixel centres at +0.5) meets the plane at height z."""
    u = (col + 0.5 - cam.width / 2) / cam.focal
    v = (row + 0.5 - cam.height_px / 2) / cam.focal
    d = cam.forward + u * cam.right - v * cam.up
    t = (z - cam.origin[2]) / d[2]
    return (cam.origin + t * d)[:2]


def draw_alone(renderer: Renderer, shape: int, x: float, y: float, yaw: float = 0.0):
    """(row, col, sqrt(area), box w, box h) of one object drawn alone, or None when nothing shows."""
    obj = SceneObject(SHAPE_CLASS[shape], x, y, yaw)
    box = renderer.object_box(obj)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    d = renderer.camera.rays[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    t, _ = renderer.intersect(obj, renderer.camera.origin, d)
    hit = np.isfinite(t).reshape(y1 - y0, x1 - x0)
    if not hit.any():
        return None
    ys, xs = np.nonzero(hit)
    return (ys.mean() + y0, xs.mean() + x0, np.sqrt(len(ys)), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def predict(renderer: Renderer, ob: np.ndarray, refine: int = 2):
    """The observation that `renderer` would make of an object seen at ob's centroid, or None."""
    shape = int(ob[SHAPE])
    name = ("cube", "sphere", "cylinder")[shape]
    yaws = CUBE_YAWS if shape == 0 else (0.0,)
    best = None
    for yaw in yaws:
        target = np.array([ob[ROW], ob[COL]])
        aim = target.copy()
        for _ in range(refine + 1):  # move the object until its drawn centroid lands on the observed one
            x, y = _floor_point(renderer.camera, aim[0], aim[1], renderer.sizes.top(name) / 2)
            drawn = draw_alone(renderer, shape, x, y, yaw)
            if drawn is None:
                break
            aim += target - np.array(drawn[:2])
        if drawn is None:
            continue
        err = abs(drawn[3] / drawn[4] - ob[BOX_W] / ob[BOX_H])
        if best is None or err < best[0]:
            best = (err, drawn)
    return None if best is None else np.array([shape, *best[1]])


def residuals(renderer: Renderer, obs: np.ndarray) -> np.ndarray:
    """Relative errors (size, box width, box height) of each observation under renderer's camera and
    sizes, then per shape the errors of the size-row line (horizon h in units of 100 rows, slope k
    relative), weighted as a quarter of the shape's observations: the line is what perspective
    shows across the whole image, which single objects (some partly hidden) show only weakly."""
    pred = np.full_like(obs, np.nan)
    for i, ob in enumerate(obs):
        p = predict(renderer, ob)
        if p is not None:
            pred[i] = p
    with np.errstate(invalid="ignore"):
        rel = np.stack([pred[:, c] / obs[:, c] - 1 for c in (SIZE, BOX_W, BOX_H)], 1)
    out = [np.nan_to_num(rel, nan=1.0).ravel()]
    for s in range(3):
        sel = (obs[:, SHAPE] == s) & np.isfinite(pred[:, SIZE])
        if sel.sum() < 10:
            continue
        (h_obs, k_obs), (h_pred, k_pred) = size_line(obs[sel]), size_line(pred[sel])
        w = np.sqrt(sel.sum()) / 2
        out.append(w * np.array([(h_pred - h_obs) / 100, k_pred / k_obs - 1]))
    return np.concatenate(out)


def starts(obs: np.ndarray, distance: float, hfovs=(34.0, 40.0, 46.0, 52.0)) -> list:
    """Starting points of the fit, one per field of view: the pitch that puts the floor's horizon
    near the observations' size-line horizon, and object sizes scaled to the focal length. The
    residuals barely change along (narrower view, smaller objects, camera lower): the fit is started
    from several places along it, and the best end kept."""
    lines = [size_line(obs[obs[:, SHAPE] == s]) for s in range(3) if (obs[:, SHAPE] == s).sum() >= 10]
    h = float(np.nanmean([line[0] for line in lines])) if lines else -60.0
    base = Camera(CameraSpec(distance=distance))
    out = []
    for hfov in hfovs:
        focal = (base.width / 2) / np.tan(np.radians(hfov) / 2)
        pitch = np.arctan((base.height_px / 2 - h) / focal)
        scale = base.focal / focal
        out.append((CameraSpec(height=float(distance * np.tan(pitch)), distance=distance, hfov_deg=hfov),
                    ObjectSizes(*(scale * v for v in asdict(ObjectSizes()).values()))))
    return out


def fit_camera(obs: np.ndarray, start=None, distance: float = CameraSpec().distance, max_obs: int = 300,
               seed: int = 0, verbose: int = 0) -> dict:
    """Fit camera height, aim, field of view and the shapes' dimensions to observations (n, 6).

    start: [(CameraSpec, ObjectSizes)] to start from (default: `starts`); the best end is kept.
    Returns {"camera": CameraSpec, "sizes": ObjectSizes, "cost": the robust cost, "residuals":
    per-shape median absolute relative errors, "observations": how many were used}. At most
    max_obs observations are used, drawn evenly across shapes (deterministic from seed)."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(seed)
    per_shape = max(max_obs // 3, 1)
    picked = []
    for s in range(3):
        o = obs[obs[:, SHAPE] == s]
        if len(o) > per_shape:
            o = o[np.sort(rng.choice(len(o), per_shape, replace=False))]
        picked.append(o)
    used = np.concatenate(picked)
    if not len(used):
        raise ValueError("no observations to fit the camera on: the masks hold no wholly visible object")

    def fun(p):
        cam, sizes = split(p, distance)
        return residuals(Renderer(Camera(cam), sizes), used)

    lo = np.array([0.5, 10.0, -8.0, 0.05, 0.05, 0.05, 0.05])
    hi = np.array([20.0, 90.0, 8.0, 2.0, 2.0, 2.0, 3.0])
    best = None
    for cam0, sizes0 in (start or starts(obs, distance)):
        p0 = np.clip(join(cam0, sizes0), lo + 1e-6, hi - 1e-6)
        # pixel counts change in steps: finite differences need steps that move several pixels
        res = least_squares(fun, p0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05, diff_step=0.01,
                            x_scale=np.where(np.abs(p0) > 1e-3, np.abs(p0), 1.0), verbose=verbose, max_nfev=60)
        if verbose:
            print(f"from {cam0}: cost {res.cost:.4f} at {split(res.x, distance)}")
        if best is None or res.cost < best.cost:
            best = res
    cam, sizes = split(best.x, distance)
    err = np.abs(best.fun)[:3 * len(used)].reshape(-1, 3)  # the residuals at the end, as least_squares left them
    summary = {name: {"size": float(np.median(err[used[:, SHAPE] == s, 0])),
                      "box w": float(np.median(err[used[:, SHAPE] == s, 1])),
                      "box h": float(np.median(err[used[:, SHAPE] == s, 2]))}
               for s, name in enumerate(("cube", "sphere", "cylinder")) if (used[:, SHAPE] == s).any()}
    return {"camera": cam, "sizes": sizes, "cost": float(best.cost), "residuals": summary, "observations": len(used)}
