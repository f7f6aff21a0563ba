"""The 49 classes of the competition: the one place they are defined.

Object id = 1 + color + 8 * material + 16 * shape, 0 is background.
Ids 1-8 metal cubes, 9-16 rubber cubes, 17-24 metal spheres, 25-32 rubber spheres,
33-40 metal cylinders, 41-48 rubber cylinders (checked against the real masks).
"""
import numpy as np

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("metal", "rubber")
COLORS = ("gray", "red", "blue", "green", "brown", "cyan", "purple", "yellow")

# CLEVR's object colors (RGB), keyed by name; the order of COLORS, not of this dict, sets the ids.
COLOR_RGB = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

BACKGROUND = 0
NUM_OBJECT_CLASSES = len(SHAPES) * len(MATERIALS) * len(COLORS)  # 48
NUM_CLASSES = NUM_OBJECT_CLASSES + 1  # 49, background included


def class_id(shape: str, material: str, color: str) -> int:
    """Class id of an object, e.g. class_id("sphere", "metal", "green") == 20."""
    try:
        return 1 + COLORS.index(color) + 8 * MATERIALS.index(material) + 16 * SHAPES.index(shape)
    except ValueError:
        raise ValueError(
            f"unknown object ({shape!r}, {material!r}, {color!r}): shape in {SHAPES}, "
            f"material in {MATERIALS}, color in {COLORS}"
        ) from None


def class_parts(cid: int) -> tuple:
    """Inverse of class_id: (shape, material, color) of an object id in 1..48."""
    if not 1 <= cid <= NUM_OBJECT_CLASSES:
        raise ValueError(f"object class ids are 1..{NUM_OBJECT_CLASSES}, got {cid}")
    k = cid - 1
    return SHAPES[k // 16], MATERIALS[(k // 8) % 2], COLORS[k % 8]


CLASS_NAMES = ("background",) + tuple(
    "{1} {2} {0}".format(*class_parts(i)) for i in range(1, NUM_CLASSES)
)  # e.g. CLASS_NAMES[20] == "metal green sphere"


def _palette() -> np.ndarray:
    """(49, 3) uint8 colors for drawing masks: the object's own color shaded by shape (cubes full,
    spheres darker, cylinders darkest) and lightened for rubber, so all 49 stay apart; black background."""
    pal = np.zeros((NUM_CLASSES, 3), np.float32)
    shade = {"cube": 1.0, "sphere": 0.72, "cylinder": 0.48}
    for i in range(1, NUM_CLASSES):
        shape, material, color = class_parts(i)
        rgb = 40 + np.array(COLOR_RGB[color], np.float32) * (215 / 255) * shade[shape]
        if material == "rubber":
            rgb = rgb + 0.35 * (255 - rgb)
        pal[i] = rgb
    return pal.round().astype(np.uint8)


PALETTE = _palette()


def colorize(mask) -> np.ndarray:
    """(..., H, W) class ids -> (..., H, W, 3) uint8 RGB for pictures."""
    return PALETTE[np.asarray(mask, dtype=np.int64)]
