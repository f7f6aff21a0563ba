"""A small ray caster for CLEVRER-like frames: floor, cubes, spheres, cylinders, soft shadows.

World units, right-handed: x to the right of the camera, y away from it, z up; the floor is z = 0.
The camera is CLEVR's (about 5 units up, 10 back, looking down ~26 degrees at the origin,
49 degree horizontal field of view); CameraSpec and ObjectSizes hold the camera and each shape's
dimensions, so that other cameras and sizes can be drawn. Every object stands on the floor and is described by
`SceneObject(class_id, x, y, angle)`; `Renderer.render(objects)` returns the RGB frame and the
mask (class id of the nearest surface at each pixel centre; floor and shadows are background).

Speed comes from never tracing a ray that cannot hit: each object is intersected only with the
pixels of its own screen-space bounding box and each shadow is evaluated only on the floor pixels
of its own bounding box; the floor (its tone, gradient and vignetting) is one image computed once.
"""
from dataclasses import dataclass

import numpy as np

from data.classes import COLOR_RGB, class_parts
from data.format import HEIGHT, WIDTH

# ---- scene constants (calibrated against the real frames, see scripts/analysis/compare_frames.py) ----


@dataclass(frozen=True)
class ObjectSizes:
    """Each shape's dimensions in floor units (the camera's scale: it stands `distance` units from
    the floor's origin). The defaults are CLEVR's: one radius for all shapes."""

    cube_half: float = 0.52 / np.sqrt(2.0)  # CLEVR shrinks cubes by sqrt(2) to look as big as spheres
    sphere_radius: float = 0.52
    cylinder_radius: float = 0.52
    cylinder_height: float = 1.04

    def top(self, shape: str) -> float:
        """Height of the shape's top above the floor."""
        return {"cube": 2 * self.cube_half, "sphere": 2 * self.sphere_radius, "cylinder": self.cylinder_height}[shape]

    def reach(self, shape: str) -> float:
        """Largest horizontal distance from the shape's axis to its surface (any yaw)."""
        return {"cube": np.sqrt(2.0) * self.cube_half, "sphere": self.sphere_radius,
                "cylinder": self.cylinder_radius}[shape]

    @property
    def max_reach(self) -> float:
        return max(self.reach(s) for s in ("cube", "sphere", "cylinder"))


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera `distance` floor units behind the origin and `height` above the floor,
    looking at the floor point (0, look_y), with a horizontal field of view of `hfov_deg`. The
    defaults are CLEVR's camera."""

    height: float = 4.96
    distance: float = 10.1
    hfov_deg: float = 49.1
    look_y: float = 0.0


@dataclass(frozen=True)
class Looks:
    """How surfaces are shaded, beyond their color. The defaults are the clevr world's look (the
    videos of generator version 2); the real world's (data/synthetic.py: WORLDS) was brought closer
    to the real frames side by side (scripts/analysis/compare_frames.py --crops_out)."""

    # radius (floor units) of the rounded edges of cubes and of a cylinder's top rim, in the shading
    # normals only (masks and silhouettes keep their sharp edges): the real objects' bevels catch the
    # lights, a bright line along a metal cube's top edges and a cylinder's rim; 0: sharp edges
    bevel: float = 0.0
    # what a metal surface reflects above the horizon, at elevation sin(e) = rz: sky[0] + sky[1] x
    # sqrt(rz) (the clevr look brightens upwards; the real frames' metal shows a dark room above,
    # bright only at the lamps, so upward faces and a sphere's upper half are dark there)
    sky: tuple = (0.12, 0.50)
    # how much brighter a metal surface's reflection is towards the key light's side (front-left, where
    # the camera is) than away from it, most at the horizon (negative: darker towards the camera)
    sky_key: float = 0.22
    # strength of the lamps' glow and sharp highlights on metal (1: the clevr look)
    gloss: float = 1.0


SIZES = ObjectSizes()

# Three lights, as in CLEVR's scene: a key light in front-left of the objects (its shadow falls
# behind-right of them), a back light behind-right (shadow in front-left) and a low fill light
# behind-left whose long, faint shadow reaches towards the lower right of the frame.
# (direction towards the light, diffuse intensity, shadow strength, penumbra half-width in units)
_LIGHTS = (
    ((-0.45, -0.55, 0.70), 0.55, 0.10, 0.05),
    ((0.55, 0.45, 0.70), 0.20, 0.10, 0.05),
    ((-0.55, 0.60, 0.30), 0.12, 0.035, 0.30),
)

# The floor as the camera sees it: a degree-4 polynomial in the pixel position (u, v in -1..1)
# fitted per channel to the median of the real frames' background (the real camera and lights
# never move, so this is the same in every video). Rows: (power of u, power of v, R, G, B).
_FLOOR_POLY = (
    (0, 0, 132.26, 132.25, 131.15), (0, 1, -0.79, -1.25, -4.99), (0, 2, 7.88, 7.00, 8.32),
    (0, 3, 11.72, 11.55, 13.70), (0, 4, -14.95, -15.13, -15.97), (1, 0, 0.79, 0.93, 0.66),
    (1, 1, 1.20, 1.83, 5.45), (1, 2, -7.72, -7.34, -9.66), (1, 3, 0.95, 0.85, -0.74),
    (2, 0, 1.83, 1.67, 3.07), (2, 1, 0.19, -0.08, -1.00), (2, 2, -2.01, -1.07, -1.16),
    (3, 0, -0.11, -0.17, 0.26), (3, 1, -1.09, -0.92, -2.57), (4, 0, -2.68, -2.77, -3.81),
)


def albedo(color: str) -> np.ndarray:
    """Surface color in 0..1 for a CLEVR color name. CLEVR's RGB values are linear reflectances;
    the real frames show them through a compressive tone curve: a matte object's mean pixel is
    ~132 * (rgb / 255) ** 0.42 (fitted on the real rubber objects), so shading uses this curve."""
    return (np.asarray(COLOR_RGB[color], np.float32) / 255.0) ** 0.42


@dataclass(frozen=True)
class SceneObject:
    """One object standing on the floor: its class (shape, material, color), the floor position
    of its centre and, for cubes, the rotation about the vertical axis (radians)."""

    class_id: int
    x: float
    y: float
    angle: float = 0.0

    @property
    def shape(self) -> str:
        return class_parts(self.class_id)[0]


class Camera:
    """Pinhole camera at `origin` looking at the floor's origin; pixel rays are precomputed."""

    def __init__(self, spec: CameraSpec = CameraSpec(), width=WIDTH, height_px=HEIGHT):
        self.spec = spec
        self.width, self.height_px = width, height_px
        self.origin = np.array([0.0, -spec.distance, spec.height])
        fwd = np.array([0.0, spec.look_y, 0.0]) - self.origin
        fwd /= np.linalg.norm(fwd)
        right = np.array([1.0, 0.0, 0.0])
        up = np.cross(right, fwd)
        self.forward, self.right, self.up = fwd, right, up
        self.focal = (width / 2) / np.tan(np.radians(spec.hfov_deg) / 2)
        u = (np.arange(width) + 0.5 - width / 2) / self.focal
        v = (np.arange(height_px) + 0.5 - height_px / 2) / self.focal
        d = fwd + u[None, :, None] * right - v[:, None, None] * up  # (H, W, 3)
        self.rays = (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)
        # Antialiasing grid: rays through every pixel centre *and* every pixel corner, i.e. a
        # (2H+1, 2W+1) grid at half-pixel steps; grid point (2i+1, 2j+1) is pixel (i, j)'s centre.
        u2 = (np.arange(2 * width + 1) / 2 - width / 2) / self.focal
        v2 = (np.arange(2 * height_px + 1) / 2 - height_px / 2) / self.focal
        d2 = fwd + u2[None, :, None] * right - v2[:, None, None] * up
        self.rays2 = d2 / np.linalg.norm(d2, axis=-1, keepdims=True)  # float64: thin slivers stay exact
        # Where each pixel's ray meets the floor (every ray points below the horizon).
        t = -self.origin[2] / self.rays[..., 2]
        if not (t > 0).all():
            raise ValueError("camera sees the horizon: lower hfov_deg or raise the camera")
        self.floor_xy = (self.origin[:2] + t[..., None] * self.rays[..., :2]).astype(np.float32)

    def project(self, points) -> tuple:
        """World points (..., 3) -> pixel coordinates (px, py) and depth along the view axis."""
        rel = np.asarray(points, np.float64) - self.origin
        depth = rel @ self.forward
        safe = np.maximum(depth, 1e-3)
        px = self.width / 2 + self.focal * (rel @ self.right) / safe
        py = self.height_px / 2 - self.focal * (rel @ self.up) / safe
        return px, py, depth

    def screen_box(self, points, pad=1):
        """Integer pixel box (y0, y1, x0, x1) covering the projection of points (k, 3), or None
        when it is off screen."""
        return self.screen_boxes(np.asarray(points)[None], pad)[0]

    def screen_boxes(self, points, pad=1) -> list:
        """screen_box of each group of points (n, k, 3), in one vectorized pass."""
        px, py, depth = self.project(points)
        x0 = np.maximum(np.floor(px.min(-1)) - pad, 0).astype(int).tolist()
        x1 = np.minimum(np.ceil(px.max(-1)) + pad + 1, self.width).astype(int).tolist()
        y0 = np.maximum(np.floor(py.min(-1)) - pad, 0).astype(int).tolist()
        y1 = np.minimum(np.ceil(py.max(-1)) + pad + 1, self.height_px).astype(int).tolist()
        behind = (depth <= 0.05).any(-1).tolist()
        boxes = []
        for g in range(len(x0)):
            if behind[g]:  # a point behind the camera: be safe, take the whole width below the rest
                ahead = depth[g] > 0.05
                top = int(np.floor(py[g][ahead].min())) - pad if ahead.any() else 0
                boxes.append((max(top, 0), self.height_px, 0, self.width))
            elif x0[g] >= x1[g] or y0[g] >= y1[g]:
                boxes.append(None)
            else:
                boxes.append((y0[g], y1[g], x0[g], x1[g]))
        return boxes


def floor_image(width=WIDTH, height=HEIGHT) -> np.ndarray:
    """(H, W, 3) float32 floor in 8-bit levels, from the fitted polynomial."""
    v, u = np.mgrid[:height, :width].astype(np.float32)
    u = (u + 0.5) / width * 2 - 1
    v = (v + 0.5) / height * 2 - 1
    img = np.zeros((height, width, 3), np.float32)
    for i, j, r, g, b in _FLOOR_POLY:
        img += (u**i * v**j)[..., None] * np.array([r, g, b], np.float32)
    return img


# ---------------------------------------------------------------- ray-object intersections
# Each takes the camera origin o (3,) and unit ray directions d (N, 3) and returns the hit
# distance t (N,) (inf where the ray misses) and the unit normals (N, 3).

def hit_sphere(o, d, center, r):
    oc = o - center
    b = d @ oc
    disc = b * b - (oc @ oc - r * r)
    t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    n = (o + np.where(np.isfinite(t), t, 0)[:, None] * d - center) / r
    return t, n


def hit_box(o, d, center, half, angle):
    """Cube of half side `half` rotated by `angle` about the vertical axis (slab method)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> cube frame
    ol = rot @ (o - center)
    dl = d @ rot.T
    dl = np.where(np.abs(dl) < 1e-9, 1e-9, dl)
    inv = 1.0 / dl
    t1 = (-half - ol) * inv
    t2 = (half - ol) * inv
    tmin = np.minimum(t1, t2)
    tnear = tmin.max(1)
    tfar = np.maximum(t1, t2).min(1)
    hit = (tnear <= tfar) & (tfar > 0)
    t = np.where(hit, tnear, np.inf)
    axis = tmin.argmax(1)
    nl = np.zeros_like(dl)
    rows = np.arange(len(d))
    nl[rows, axis] = -np.sign(dl[rows, axis])
    return t, nl @ rot  # back to the world frame


def hit_cylinder(o, d, cx, cy, r, h):
    """Upright cylinder on the floor, axis at (cx, cy), with its top cap (the camera is above it)."""
    ox, oy = o[0] - cx, o[1] - cy
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = np.maximum(dx * dx + dy * dy, 1e-12)
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - r * r)
    ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
    z = o[2] + ts * dz
    side = (disc > 0) & (z >= 0) & (z <= h) & (ts > 0)
    tc = (h - o[2]) / np.where(np.abs(dz) < 1e-9, -1e-9, dz)
    px, py = ox + tc * dx, oy + tc * dy
    cap = (px * px + py * py <= r * r) & (tc > 0)
    t = np.where(side, ts, np.inf)
    use_cap = cap & (tc < t)
    t = np.where(use_cap, tc, t)
    n = np.zeros_like(d)
    n[:, 0] = np.where(use_cap, 0.0, (ox + ts * dx) / r)
    n[:, 1] = np.where(use_cap, 0.0, (oy + ts * dy) / r)
    n[:, 2] = np.where(use_cap, 1.0, 0.0)
    return t, n


# ---------------------------------------------------------------- shadows on the floor

def _smooth_cover(sd, w):
    """Soft coverage 1 inside (sd < -w) .. 0 outside (sd > w), smoothstep in between."""
    s = np.clip(0.5 - sd / (2 * w), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _segment_distance(px, py, ax, ay, bx, by):
    """Distance from points (px, py) to the 2D segment a-b."""
    ex, ey = bx - ax, by - ay
    ee = ex * ex + ey * ey
    u = np.clip(((px - ax) * ex + (py - ay) * ey) / max(ee, 1e-12), 0.0, 1.0)
    qx, qy = px - ax - u * ex, py - ay - u * ey
    return np.sqrt(qx * qx + qy * qy)


def _halfplanes_sd(px, py, normals, offsets):
    """max_k (normal_k . p - offset_k): the signed distance (negative inside) to a convex polygon
    given by its edges' outward unit normals, exact inside and along the edges, slightly short
    near its outer corners (soft shadows hide that)."""
    n = normals.astype(np.float32)[:, :, None, None]
    return (px[None] * n[:, 0] + py[None] * n[:, 1] - offsets.astype(np.float32)[:, None, None]).max(0)


def _cube_shadow_planes(obj, shift, half):
    """Edges of the shadow of a cube whose top's shadow is its base moved by `shift` (2,): the
    convex hull of two squares = the square swept along the shift, bounded by the square's four
    edge lines (pushed out along the shift) and two lines parallel to the shift."""
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    u, v = np.array([c, s]), np.array([-s, c])
    centre = np.array([obj.x, obj.y])
    normals = [u, -u, v, -v]
    offsets = [n @ centre + half + max(0.0, n @ shift) for n in normals]
    length = np.hypot(*shift)
    if length > 1e-9:
        side = np.array([-shift[1], shift[0]]) / length
        for n in (side, -side):
            normals.append(n)
            offsets.append(n @ centre + half * (abs(n @ u) + abs(n @ v)))
    return np.array(normals), np.array(offsets)


class Renderer:
    """Renders lists of SceneObjects with one camera; the floor image is computed once."""

    def __init__(self, camera: Camera = None, sizes: ObjectSizes = SIZES, looks: Looks = Looks()):
        self.camera = camera or Camera()
        self.sizes = sizes
        self.looks = looks
        self.floor = floor_image(self.camera.width, self.camera.height_px)
        self.lights = [
            (np.array(dvec) / np.linalg.norm(dvec), k, sh, w) for dvec, k, sh, w in _LIGHTS
        ]
        self._light_dirs = np.stack([l[0] for l in self.lights])  # (3 lights, 3)
        self._light_k = np.array([l[1] for l in self.lights], np.float32)
        self._key_xy = self._light_dirs[0, :2] / np.linalg.norm(self._light_dirs[0, :2])  # metal: brighter that way
        gh, gw = 2 * self.camera.height_px + 1, 2 * self.camera.width + 1
        self._depth = np.full((gh, gw), np.inf)
        self._ids = np.zeros((gh, gw), np.uint8)
        self._cols = np.zeros((gh, gw, 3), np.float32)
        self._cache = {}  # (class, x, y, angle) -> what _trace made of that object last frame

    # -- shadows
    def _shadow_points(self, obj: SceneObject) -> list:
        """For each lamp, the 4 floor corners of a rectangle holding obj's shadow on it."""
        top = self.sizes.top(obj.shape)
        groups = []
        for ldir, _, _, w in self.lights:
            tip_x, tip_y = obj.x - top * ldir[0] / ldir[2], obj.y - top * ldir[1] / ldir[2]
            reach = self.sizes.reach(obj.shape) + 2 * w
            lo_x, hi_x = min(obj.x, tip_x) - reach, max(obj.x, tip_x) + reach
            lo_y, hi_y = min(obj.y, tip_y) - reach, max(obj.y, tip_y) + reach
            groups.append([(lo_x, lo_y, 0), (hi_x, lo_y, 0), (lo_x, hi_y, 0), (hi_x, hi_y, 0)])
        return groups

    def _shadow_factors(self, obj: SceneObject, boxes) -> list:
        """[(box, (h, w) factor)]: how much each lamp's light reaches the floor pixels of the box
        around obj's shadow (boxes: the screen box of each lamp's rectangle, from _shadow_points)."""
        cam = self.camera
        top = self.sizes.top(obj.shape)
        sz = self.sizes
        patches = []
        for (ldir, _, strength, w), box in zip(self.lights, boxes):
            if box is None:
                continue
            y0, y1, x0, x1 = box
            fx = cam.floor_xy[y0:y1, x0:x1, 0]
            fy = cam.floor_xy[y0:y1, x0:x1, 1]
            shift = -top * ldir[:2] / ldir[2]  # from the base to the shadow of the top
            if obj.shape == "sphere":
                # distance from the sphere's centre to the ray from the floor point to the lamp
                vx, vy, vz = obj.x - fx, obj.y - fy, sz.sphere_radius
                vl = vx * ldir[0] + vy * ldir[1] + vz * ldir[2]
                sd = np.sqrt(np.maximum(vx * vx + vy * vy + (vz * vz) - vl * vl, 0)) - sz.sphere_radius
            elif obj.shape == "cylinder":
                # the shadow of an upright cylinder is a disc swept along the shadow of its axis
                sd = _segment_distance(fx, fy, obj.x, obj.y, obj.x + shift[0], obj.y + shift[1]) - sz.cylinder_radius
            else:
                sd = _halfplanes_sd(fx, fy, *_cube_shadow_planes(obj, shift, sz.cube_half))
            patches.append((box, 1.0 - strength * _smooth_cover(sd, w)))
        return patches

    # -- objects
    def _shade(self, material, color, p_n, d):
        """Colors (N, 3) in 8-bit levels of surface points with normals p_n seen along rays d."""
        alb = albedo(color)
        ndl = np.maximum(p_n @ self._light_dirs.T, 0.0)  # (N, lights)
        if material == "rubber":
            # matte and evenly lit (the real rubber objects vary only +-10% across their surface)
            diffuse = 0.42 + 0.25 * (ndl @ self._light_k)
            # broad, weak highlight
            refl = d - 2 * (d * p_n).sum(1, keepdims=True) * p_n
            rl2 = np.maximum(refl @ self._light_dirs.T, 0.0) ** 2
            spec = (rl2 * rl2 * rl2) @ self._light_k * 0.06  # cos^6 (powers by products: faster)
            col = diffuse[:, None] * alb + spec[:, None]
        else:
            # metal: mostly a tinted reflection of the surroundings (bright floor below, a
            # darker room above), with sharp, strong highlights of the lights
            refl = d - 2 * (d * p_n).sum(1, keepdims=True) * p_n
            rz = refl[:, 2]
            # floor below (darkening towards the horizon), a room brightening upwards, and some
            # variation around the vertical axis so that cylinders show streaks like the real ones
            sky = self.looks.sky
            env = np.where(rz < 0, 0.55 - 0.35 * np.exp(np.minimum(rz, 0) / 0.12), sky[0] + sky[1] * np.sqrt(np.maximum(rz, 0)))
            hx, hy = refl[:, 0] ** 2, refl[:, 1] ** 2
            horiz = np.sqrt(hx + hy) + 1e-6
            key = self._key_xy
            env += (0.10 * (hx - hy) / (horiz * horiz) + self.looks.sky_key * (refl[:, 0] * key[0] + refl[:, 1] * key[1]) / horiz) * (1 - np.abs(rz))
            diffuse = 0.04 + 0.12 * (ndl @ self._light_k)
            rl = np.maximum(refl @ self._light_dirs.T, 0.0)
            r2 = rl * rl
            r4 = r2 * r2
            r8 = r4 * r4
            r16 = r8 * r8
            r32 = r16 * r16
            glossy = r8 @ self._light_k * 0.9  # the lamps' broad colored glow on the surface
            spec = (r32 * r32 * r16) @ self._light_k * 1.8  # and their sharp white highlights, cos^80
            if self.looks.gloss != 1.0:
                glossy, spec = self.looks.gloss * glossy, self.looks.gloss * spec
            col = (0.8 * (env + diffuse) + glossy)[:, None] * alb + spec[:, None]
        return col * 255.0

    def intersect(self, obj: SceneObject, o, d):
        """(hit distance t (N,), inf where missed; unit normals (N, 3)) of rays d (N, 3) from o against obj."""
        sz = self.sizes
        if obj.shape == "sphere":
            return hit_sphere(o, d, np.array([obj.x, obj.y, sz.sphere_radius]), sz.sphere_radius)
        if obj.shape == "cube":
            return hit_box(o, d, np.array([obj.x, obj.y, sz.cube_half]), sz.cube_half, obj.angle)
        return hit_cylinder(o, d, obj.x, obj.y, sz.cylinder_radius, sz.cylinder_height)

    def bevel_normals(self, obj: SceneObject, p, n):
        """Shading normals (N, 3) at surface points p (N, 3) of obj whose true normals are n: those of
        the same shape with edges rounded to radius looks.bevel (cubes' edges, cylinders' top rim);
        n itself for spheres or without a bevel. Near an edge the normal turns smoothly from one face's
        to the other's; elsewhere it is the face's own."""
        b = self.looks.bevel
        if b <= 0 or obj.shape == "sphere":
            return n
        sz = self.sizes
        if obj.shape == "cube":
            half = sz.cube_half
            c, s = np.cos(obj.angle), np.sin(obj.angle)
            rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> cube frame, as hit_box
            local = (p - np.array([obj.x, obj.y, half])) @ rot.T
            v = local - np.clip(local, -(half - b), half - b)
            v = v @ rot  # back to the world frame
        else:
            r, h = sz.cylinder_radius, sz.cylinder_height
            rx, ry = p[:, 0] - obj.x, p[:, 1] - obj.y
            rho = np.maximum(np.hypot(rx, ry), 1e-9)
            out = np.maximum(rho - (r - b), 0.0)
            v = np.stack([out * rx / rho, out * ry / rho, np.maximum(p[:, 2] - (h - b), 0.0)], 1)
        length = np.linalg.norm(v, axis=1, keepdims=True)
        return np.where(length > 1e-9, v / np.maximum(length, 1e-12), n)

    def _object_points(self, obj: SceneObject) -> list:
        r, top = self.sizes.reach(obj.shape), self.sizes.top(obj.shape)
        return [(obj.x + sx, obj.y + sy, z) for sx in (-r, r) for sy in (-r, r) for z in (0, top)]

    def object_box(self, obj: SceneObject):
        """The pixel box (y0, y1, x0, x1) that holds obj's image, or None when it is off screen."""
        return self.camera.screen_box(self._object_points(obj))

    def render(self, objects, noise=None) -> tuple:
        """objects: SceneObjects (each class at most once). noise: None, or an (H, W, 3) float32
        array added before rounding. Returns (image (H, W, 3) uint8, mask (H, W) uint8).

        Objects are traced on the half-pixel grid (pixel centres and corners); the mask is the
        nearest object at each pixel centre and the color is a [1, 2, 1] x [1, 2, 1] / 16 tent over
        the 3 x 3 grid points around the centre, which antialiases edges like the real renders."""
        cam = self.camera
        # Each object's shadows and image depend on that object alone; an object that has not
        # moved since the previous frame (about half of them) reuses them from there.
        traced = []
        cache = {}
        fresh = [obj for obj in objects if self._key(obj) not in self._cache]
        if fresh:  # every new screen box in one vectorized pass: the object's and its shadows'
            groups = []
            for obj in fresh:
                groups.append(self._object_points(obj))
                groups += [g + g for g in self._shadow_points(obj)]  # 4 corners twice: 8, like the object's
            boxes = cam.screen_boxes(np.array(groups, np.float64).reshape(-1, 8, 3))
            per_obj = len(self.lights) + 1
            for k, obj in enumerate(fresh):
                self._cache[self._key(obj)] = self._trace(obj, boxes[k * per_obj], boxes[k * per_obj + 1:(k + 1) * per_obj])
        for obj in objects:
            key = self._key(obj)
            cache[key] = self._cache[key]
            traced.append((obj, cache[key]))
        self._cache = cache  # keep what this frame used, drop the rest

        light = np.ones((cam.height_px, cam.width), np.float32)
        for _, (shadows, _, _, _) in traced:
            for (y0, y1, x0, x1), factor in shadows:
                light[y0:y1, x0:x1] *= factor
        floor = self.floor * light[..., None]

        depth, ids, cols = self._depth, self._ids, self._cols  # grid buffers, kept clear between frames
        boxes = []
        for obj, (_, box, t, colors) in traced:  # nearest surface wins, whatever the order
            if box is None:
                continue
            y0, y1, x0, x1 = box
            gy, gx = slice(2 * y0, 2 * y1 + 1), slice(2 * x0, 2 * x1 + 1)
            win = t < depth[gy, gx]
            if not win.any():
                continue
            depth[gy, gx][win] = t[win]
            ids[gy, gx][win] = obj.class_id
            cols[gy, gx][win] = colors[win]
            boxes.append(box)
        img = floor.copy()
        for y0, y1, x0, x1 in boxes:  # resolve each box from the grid (idempotent where boxes overlap)
            gy, gx = slice(2 * y0, 2 * y1 + 1), slice(2 * x0, 2 * x1 + 1)
            cover = _tent((ids[gy, gx] != 0).astype(np.float32))
            img[y0:y1, x0:x1] = _tent(cols[gy, gx]) + (1.0 - cover)[..., None] * floor[y0:y1, x0:x1]
        mask = np.ascontiguousarray(ids[1::2, 1::2])
        for y0, y1, x0, x1 in boxes:  # clear the grid buffers for the next frame
            gy, gx = slice(2 * y0, 2 * y1 + 1), slice(2 * x0, 2 * x1 + 1)
            depth[gy, gx], ids[gy, gx], cols[gy, gx] = np.inf, 0, 0.0
        if noise is not None:
            img += noise
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask

    @staticmethod
    def _key(obj: SceneObject):
        return (obj.class_id, obj.x, obj.y, obj.angle)

    def _trace(self, obj: SceneObject, box, shadow_boxes):
        """(shadow patches, box, hit distance grid (inf = miss), color grid) of one object alone."""
        shadows = self._shadow_factors(obj, shadow_boxes)
        if box is None:
            return shadows, None, None, None
        y0, y1, x0, x1 = box
        gy, gx = slice(2 * y0, 2 * y1 + 1), slice(2 * x0, 2 * x1 + 1)
        d = self.camera.rays2[gy, gx].reshape(-1, 3)
        t, n = self.intersect(obj, self.camera.origin, d)
        hit = np.isfinite(t)
        colors = np.zeros((len(t), 3), np.float32)
        if hit.any():
            _, material, color = class_parts(obj.class_id)
            normals = n[hit]
            if self.looks.bevel > 0:
                normals = self.bevel_normals(obj, self.camera.origin + t[hit, None] * d[hit], normals)
            colors[hit] = self._shade(material, color, normals, d[hit])
        shape = (2 * (y1 - y0) + 1, 2 * (x1 - x0) + 1)
        return shadows, box, t.reshape(shape), colors.reshape(shape + (3,))


def _tent(g):
    """(2h+1, 2w+1, ...) half-pixel grid -> (h, w, ...) pixels, [1, 2, 1] / 4 weights each way."""
    g = 0.25 * g[:-2:2] + 0.5 * g[1:-1:2] + 0.25 * g[2::2]
    return 0.25 * g[:, :-2:2] + 0.5 * g[:, 1:-1:2] + 0.25 * g[:, 2::2]
