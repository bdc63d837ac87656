"""Synthetic occluders for XSeg's zero-label training: hands, hair, glasses, objects, patches and plain
shapes in the face's own colours drawn procedurally over a face, each as a colour layer with a soft-edged
alpha.

Why procedural: we ship no labelled data and cannot download a generic XSeg, so the network learns
"face, not what covers it" from the user's own faces with things pasted on top (the synthetic-occlusion
recipe of Nirkin et al. 2018). Each drawer returns a `Layer`: `alpha` says how much of the layer's
colour replaces the face, `cover` how much of the face it hides (equal to alpha for opaque things, but
clear glasses tint the eyes without hiding them). Pure numpy/OpenCV; every random choice comes from
the given `np.random.Generator`, so a seed gives the same occluder.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT
# BGR tones, light to dark, for hands that do not take the face's own skin colour
SKIN_TONES = np.array([(189, 214, 244), (160, 196, 234), (125, 170, 222), (95, 140, 198),
                       (70, 110, 165), (50, 80, 125), (35, 55, 90)], np.float32)
HAIR_COLOURS = np.array([(20, 20, 25), (30, 40, 60), (40, 70, 110), (110, 170, 210), (40, 70, 150),
                         (150, 150, 155)], np.float32)
FRAME_COLOURS = np.array([(15, 15, 15), (30, 50, 80), (120, 120, 125), (60, 150, 190)], np.float32)


@dataclass
class Geometry:
    """Where the face is in the image: the region's box, eyes, mouth and chin (from landmarks when
    given, else estimated from the box), and the region's outline for placing things over its edge."""

    shape: tuple[int, int]
    box: tuple[float, float, float, float]  # left, top, right, bottom
    eyes: np.ndarray  # 2x2, image-left eye first
    mouth: np.ndarray
    chin: np.ndarray
    edge: np.ndarray  # Kx2 points on the region's outline

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@dataclass
class Layer:
    """One occluder: colour (float32 HxWx3, 0..255) shown with `alpha`; `cover` is what it hides."""

    colour: np.ndarray
    alpha: np.ndarray
    cover: np.ndarray


def face_geometry(region: np.ndarray, landmarks: np.ndarray | None = None) -> Geometry:
    """The geometry drawers place occluders by. Without landmarks, eyes and mouth sit at the heights
    they have in our whole-face hulls (22% and 67% of the way down the region's box)."""
    h, w = region.shape[:2]
    inside = (region > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        box = (0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h)
        edge = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], np.float64)
    else:
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        edge = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    bw, bh = box[2] - box[0], box[3] - box[1]
    if landmarks is not None and len(landmarks) == 68:
        lm = np.asarray(landmarks, np.float64)
        eyes = np.array([lm[36:42].mean(0), lm[42:48].mean(0)])
        mouth, chin = lm[48:60].mean(0), lm[8].copy()
    else:
        cx = (box[0] + box[2]) / 2
        eyes = np.array([[cx - 0.22 * bw, box[1] + 0.22 * bh], [cx + 0.22 * bw, box[1] + 0.22 * bh]])
        mouth, chin = np.array([cx, box[1] + 0.67 * bh]), np.array([cx, box[3] - 0.02 * bh])
    return Geometry((h, w), box, eyes, mouth, chin, edge)


# ---- drawing primitives -------------------------------------------------------------------------

def _fix(points: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _poly(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [_fix(points)], 255, cv2.LINE_AA, _SHIFT)
    return m.astype(np.float32) / 255.0


def _stroke(shape: tuple[int, int], points: np.ndarray, thickness: float, closed: bool = False) -> np.ndarray:
    """A polyline `thickness` px wide with round ends (capsules, strands, rings)."""
    m = np.zeros(shape, np.uint8)
    cv2.polylines(m, [_fix(points)], closed, 255, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)
    return m.astype(np.float32) / 255.0


def _soften(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Feather an edge; values under 1/255 become exactly 0 so the alpha has a definite extent."""
    if sigma > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[alpha < 1.0 / 255] = 0.0
    return alpha.astype(np.float32)


def _ellipse_pts(centre: np.ndarray, rx: float, ry: float, angle: float, n: int = 48,
                 power: float = 2.0) -> np.ndarray:
    """An ellipse (power 2) or a rounded rectangle (power > 2: a superellipse), rotated by `angle`."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = rx * np.sign(c) * np.abs(c) ** (2 / power)
    y = ry * np.sign(s) * np.abs(s) ** (2 / power)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], 1)


def _blob_pts(rng: np.random.Generator, centre: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """A random rounded shape: an ellipse whose radius wobbles smoothly with the angle."""
    n = 40
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    wobble = np.ones(n)
    for k in range(2, 5):
        wobble += rng.uniform(-0.15, 0.15) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    ang = rng.uniform(0, np.pi)
    x, y = rx * wobble * np.cos(t), ry * wobble * np.sin(t)
    ca, sa = np.cos(ang), np.sin(ang)
    return np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], 1)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _texture(shape: tuple[int, int], rng: np.random.Generator, base: np.ndarray | None = None) -> np.ndarray:
    """A surface for objects: a shaded solid, stripes, checks or coloured noise."""
    h, w = shape
    base = rng.uniform(20, 235, 3).astype(np.float32) if base is None else base
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    along = (np.cos(ang) * xx + np.sin(ang) * yy) / max(h, w)
    kind = rng.integers(4)
    if kind == 1:  # stripes
        other = rng.uniform(20, 235, 3).astype(np.float32)
        t = 0.5 + 0.5 * np.sin(along * rng.uniform(8, 30) * np.pi)
        tex = base * t[..., None] + other * (1 - t[..., None])
    elif kind == 2:  # checks
        other = rng.uniform(20, 235, 3).astype(np.float32)
        cell = rng.uniform(0.04, 0.15) * max(h, w)
        t = ((xx // cell + yy // cell) % 2).astype(np.float32)
        tex = base * t[..., None] + other * (1 - t[..., None])
    elif kind == 3:  # coloured noise
        small = rng.uniform(-60, 60, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
        tex = base + cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        tex = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    shade = 0.75 + 0.5 * (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return np.clip(tex * shade[..., None], 0, 255).astype(np.float32)


def _paint(colour: np.ndarray, alpha: np.ndarray, mask: np.ndarray, value: np.ndarray | float,
           opacity: float = 1.0) -> None:
    """Draw `value` (a colour or an image) where `mask` is, over what the layer holds already. Only the
    mask's bounding box is touched (hair draws dozens of thin strands: full-image passes were most of a
    generic sample's cost); outside it the mask is 0 and nothing would change."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    if w == 0 or h == 0:
        return
    box = (slice(y, y + h), slice(x, x + w))
    m = mask[box][..., None]
    colour[box] *= 1 - m
    colour[box] += m * (value[box] if np.ndim(value) == 3 else value)
    np.maximum(alpha[box], mask[box] * opacity, out=alpha[box])


def _anchor(geo: Geometry, rng: np.random.Generator, weights: dict[str, float]) -> np.ndarray:
    """A point the occluder goes for: a point of the region's outline, the mouth, chin, an eye, a cheek."""
    names = list(weights)
    p = np.array([weights[k] for k in names], np.float64)
    name = names[rng.choice(len(names), p=p / p.sum())]
    jitter = rng.normal(0, 0.04, 2) * geo.width
    if name == "edge":
        return geo.edge[rng.integers(len(geo.edge))] + jitter
    if name == "eye":
        return geo.eyes[rng.integers(2)] + jitter
    if name == "cheek":
        side = rng.choice([-1, 1])
        return np.array([geo.centre[0] + side * 0.3 * geo.width, geo.box[1] + 0.5 * geo.height]) + jitter
    return {"mouth": geo.mouth, "chin": geo.chin}[name] + jitter


def _outward(geo: Geometry, point: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit vector from the face's centre through `point` (the side an arm or a stand comes from),
    turned a little at random; straight down when the point is at the centre."""
    d = point - geo.centre
    d = d / np.linalg.norm(d) if np.linalg.norm(d) > 1e-3 else np.array([0.0, 1.0])
    a = np.arctan2(d[1], d[0]) + rng.uniform(-0.5, 0.5)
    return np.array([np.cos(a), np.sin(a)])


def _empty(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((*shape, 3), np.float32), np.zeros(shape, np.float32)


def _finish(colour: np.ndarray, alpha: np.ndarray, sigma: float, cover: np.ndarray | None = None) -> Layer:
    """Feather the layer; unless told otherwise, a pixel half opaque or more hides the face entirely."""
    alpha = _soften(alpha, sigma)
    cover = np.clip(2.0 * alpha, 0.0, 1.0) if cover is None else np.minimum(_soften(cover, sigma), alpha > 0)
    return Layer(colour, alpha, cover.astype(np.float32))


DrawFn = Callable[[np.ndarray, Geometry, np.random.Generator, Sequence[np.ndarray]], Layer]


# ---- the six kinds ------------------------------------------------------------------------------

def draw_patch(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """A random-shaped piece of another image (a donor), or of another part of this one, moved and turned."""
    h, w = geo.shape
    if len(donors) and rng.random() < 0.7:
        source = np.asarray(donors[rng.integers(len(donors))])
        source = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA) if source.shape[:2] != (h, w) else source
    else:
        source = face
    centre = _anchor(geo, rng, {"edge": 0.5, "mouth": 0.15, "eye": 0.15, "cheek": 0.2})
    r = geo.width * rng.uniform(0.15, 0.35)
    mask = _poly(geo.shape, _blob_pts(rng, centre, r, r * rng.uniform(0.5, 1.3)))
    shift = rng.normal(0, 1, 2)
    shift = shift / max(np.linalg.norm(shift), 1e-6) * geo.width * rng.uniform(0.35, 0.8)
    mat = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rng.uniform(-180, 180), rng.uniform(0.8, 1.25))
    mat[:, 2] += shift  # what lands on the patch comes from elsewhere in the source
    moved = cv2.warpAffine(source, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    colour = np.clip(moved.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25, 3), 0, 255)
    return _finish(colour.astype(np.float32), mask, rng.uniform(0.3, 1.5) * w / 128)


def _skin(face: np.ndarray, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """The face's own skin (median of a patch between the eyes and the mouth) or a random skin tone."""
    if rng.random() < 0.5:
        c = (geo.eyes.mean(0) + geo.mouth) / 2
        r = max(2, int(0.08 * geo.width))
        x, y = int(np.clip(c[0], r, geo.shape[1] - r)), int(np.clip(c[1], r, geo.shape[0] - r))
        tone = np.median(face[y - r:y + r, x - r:x + r].reshape(-1, 3), axis=0).astype(np.float32)
    else:
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))].copy()
    return np.clip(tone * rng.uniform(0.85, 1.15, 3), 0, 255).astype(np.float32)


def draw_hand(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """A hand reaching in from outside the face: forearm, palm ellipse, four fingers and a thumb, in the
    face's skin colour or another skin tone, shaded along its length with darker gaps between fingers."""
    h, w = geo.shape
    tip = _anchor(geo, rng, {"mouth": 0.3, "chin": 0.3, "cheek": 0.2, "eye": 0.1, "edge": 0.1})
    out = _outward(geo, tip, rng)
    palm_w = geo.width * rng.uniform(0.35, 0.55)
    palm_l = palm_w * rng.uniform(1.0, 1.25)
    finger_l = palm_l * rng.uniform(0.5, 0.85)
    palm_c = tip + out * (finger_l * rng.uniform(0.3, 1.0) + palm_l / 2)
    side = np.array([-out[1], out[0]])
    angle = float(np.arctan2(out[1], out[0]))
    colour, alpha = _empty(geo.shape)
    tone = _skin(face, geo, rng)
    arm_end = palm_c + out * 2.0 * max(h, w)
    shapes = [_stroke(geo.shape, np.array([palm_c, arm_end]), palm_w * rng.uniform(0.7, 0.9)),
              _poly(geo.shape, _ellipse_pts(palm_c, palm_l / 2, palm_w / 2, angle))]
    base = palm_c - out * palm_l * 0.4
    fw = palm_w / 4.2
    for i, k in enumerate(np.linspace(-1.5, 1.5, 4)):
        start = base + side * k * fw
        spread = rng.uniform(-0.15, 0.15) + 0.08 * k
        d = -out * np.cos(spread) + side * np.sin(spread)
        length = finger_l * (1.0 - 0.12 * abs(k)) * rng.uniform(0.6, 1.05)  # curled fingers look shorter
        shapes.append(_stroke(geo.shape, np.array([start, start + d * length]), fw * (0.9 if i else 0.8)))
    thumb_side = rng.choice([-1, 1])
    t0 = palm_c + side * thumb_side * palm_w * 0.35
    t_dir = -out * 0.6 + side * thumb_side * 0.8
    shapes.append(_stroke(geo.shape, np.array([t0, t0 + t_dir / np.linalg.norm(t_dir) * finger_l * 0.8]), fw * 1.1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = ((xx - tip[0]) * out[0] + (yy - tip[1]) * out[1]) / max(palm_l + finger_l, 1.0)
    shade = np.clip(rng.uniform(0.85, 1.1) + rng.uniform(-0.25, 0.1) * along, 0.5, 1.3)
    noise = cv2.resize(rng.normal(0, 0.05, (8, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    body = tone * (shade + noise)[..., None]
    for m in shapes:  # each part darkened at its rim, so fingers read as separate
        rim = np.clip(m - cv2.erode(m, np.ones((3, 3), np.uint8), iterations=max(1, w // 128)), 0, 1)
        _paint(colour, alpha, m, body * (1 - 0.3 * rim[..., None]))
    return _finish(np.clip(colour, 0, 255), alpha, rng.uniform(0.4, 1.2) * w / 128)


def draw_hair(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """Locks of hair falling from the top of the face across the forehead and eyes: a tapering band in
    a hair colour with thin strands of lighter and darker shades over it and past its edges."""
    colour, alpha = _empty(geo.shape)
    base = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2, 3)
    unit = geo.width / 128
    l, t, r, _ = geo.box
    for _ in range(rng.integers(1, 5)):
        p0 = np.array([rng.uniform(l, r), t - rng.uniform(0.0, 0.15) * geo.height])
        p2 = np.array([p0[0] + rng.uniform(-0.35, 0.35) * geo.width, t + rng.uniform(0.25, 0.6) * geo.height])
        p1 = (p0 + p2) / 2 + np.array([rng.uniform(-0.25, 0.25) * geo.width, 0])
        spine = _bezier(p0, p1, p2)
        tang = np.gradient(spine, axis=0)
        normal = np.stack([-tang[:, 1], tang[:, 0]], 1) / (np.linalg.norm(tang, axis=1, keepdims=True) + 1e-6)
        width = geo.width * rng.uniform(0.1, 0.3) * np.linspace(1.0, rng.uniform(0.2, 0.6), len(spine))[:, None]
        band = np.concatenate([spine + normal * width / 2, (spine - normal * width / 2)[::-1]])
        _paint(colour, alpha, _poly(geo.shape, band), base, rng.uniform(0.85, 1.0))
        for _ in range(rng.integers(12, 30)):
            off = rng.uniform(-0.7, 0.7)
            reach = rng.uniform(0.85, 1.15)
            strand = _bezier(p0, p1, p0 + (p2 - p0) * reach) + normal * width * off + rng.normal(0, unit, 2)
            shade = np.clip(base * rng.uniform(0.6, 1.6), 0, 255)
            _paint(colour, alpha, _stroke(geo.shape, strand, unit * rng.uniform(0.8, 1.6)), shade,
                   rng.uniform(0.6, 1.0))
    return _finish(colour, alpha, rng.uniform(0.2, 0.6) * unit)


def draw_glasses(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """Glasses on the eyes: two lens rims, a bridge and temples towards the ears. Dark lenses hide the
    eyes; clear ones only tint them, so only the frame leaves the target (what DFL users label)."""
    colour, alpha = _empty(geo.shape)
    left, right = geo.eyes + rng.normal(0, 0.015 * geo.width, (2, 2))
    d = float(np.linalg.norm(right - left))
    angle = float(np.arctan2(right[1] - left[1], right[0] - left[0])) + rng.uniform(-0.05, 0.05)
    axis = np.array([np.cos(angle), np.sin(angle)])
    down = np.array([-axis[1], axis[0]])
    rx = d * rng.uniform(0.36, 0.48)
    ry = rx * rng.uniform(0.6, 0.95)
    power = rng.uniform(2.0, 5.0)
    thick = max(1.0, d * rng.uniform(0.03, 0.09))
    frame = FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))] * rng.uniform(0.8, 1.2)
    dark = rng.random() < 0.4
    lens_tint = rng.uniform(0, 60, 3) if dark else rng.uniform(150, 255, 3)
    cover = np.zeros(geo.shape, np.float32)
    centres = [c + down * ry * 0.15 for c in (left, right)]
    for c in centres:
        outline = _ellipse_pts(c, rx, ry, angle, power=power)
        lens = _poly(geo.shape, outline)
        _paint(colour, alpha, lens, lens_tint, rng.uniform(0.8, 0.97) if dark else rng.uniform(0.05, 0.25))
        if dark:
            np.maximum(cover, lens, out=cover)
        ring = _stroke(geo.shape, outline, thick, closed=True)
        _paint(colour, alpha, ring, frame)
        np.maximum(cover, ring, out=cover)
    inner = [centres[0] + axis * rx, centres[1] - axis * rx]
    mid = (inner[0] + inner[1]) / 2 - down * ry * rng.uniform(0.1, 0.4)
    parts = [_stroke(geo.shape, _bezier(inner[0], mid, inner[1], 12), thick)]
    for c, s in ((centres[0], -1), (centres[1], 1)):
        start = c + s * axis * rx - down * ry * 0.3
        parts.append(_stroke(geo.shape, np.array([start, start + s * axis * d * rng.uniform(0.6, 1.2)]), thick * 0.8))
    for m in parts:
        _paint(colour, alpha, m, frame)
        np.maximum(cover, m, out=cover)
    return _finish(colour, alpha, rng.uniform(0.2, 0.7) * geo.shape[1] / 128, cover)


def draw_object(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """A microphone, a cup or a rounded thing in front of the mouth, chin or a cheek, with a random
    surface; microphones and cups come in from below or the side, as held things do."""
    h, w = geo.shape
    colour, alpha = _empty(geo.shape)
    kind = rng.choice(["microphone", "cup", "blob"], p=[0.35, 0.3, 0.35])
    if kind == "microphone":
        head = _anchor(geo, rng, {"mouth": 0.6, "chin": 0.3, "cheek": 0.1})
        r = geo.width * rng.uniform(0.1, 0.18)
        down = _outward(geo, head + np.array([0, geo.height]), rng)
        handle = _stroke(geo.shape, np.array([head, head + down * 2 * max(h, w)]), r * rng.uniform(0.8, 1.2))
        _paint(colour, alpha, handle, _texture(geo.shape, rng, rng.uniform(10, 200) * np.ones(3, np.float32)))
        ball = _poly(geo.shape, _ellipse_pts(head, r, r * rng.uniform(1.0, 1.3), rng.uniform(0, np.pi)))
        grille = _texture(geo.shape, rng, rng.uniform(40, 200, 3).astype(np.float32))
        yy, xx = np.mgrid[0:h, 0:w]
        step = max(2, int(r / 4))
        grille[(yy % step == 0) | (xx % step == 0)] *= 0.5
        _paint(colour, alpha, ball, grille)
    elif kind == "cup":
        centre = _anchor(geo, rng, {"mouth": 0.5, "chin": 0.4, "cheek": 0.1})
        cw = geo.width * rng.uniform(0.25, 0.45)
        ch = cw * rng.uniform(1.1, 1.5)
        centre = centre + np.array([0, ch * rng.uniform(0.2, 0.5)])
        tilt = rng.uniform(-0.4, 0.4)
        body = _poly(geo.shape, _ellipse_pts(centre, cw / 2, ch / 2, tilt, power=rng.uniform(4, 8)))
        side = rng.choice([-1, 1])
        hc = centre + np.array([np.cos(tilt), np.sin(tilt)]) * side * cw / 2
        ring = _stroke(geo.shape, _ellipse_pts(hc, cw * 0.22, ch * 0.25, tilt), cw * 0.08, closed=True)
        tex = _texture(geo.shape, rng)
        _paint(colour, alpha, ring, tex)
        _paint(colour, alpha, body, tex)
    else:
        centre = _anchor(geo, rng, {"edge": 0.4, "mouth": 0.25, "chin": 0.15, "cheek": 0.2})
        r = geo.width * rng.uniform(0.15, 0.3)
        _paint(colour, alpha, _poly(geo.shape, _blob_pts(rng, centre, r, r * rng.uniform(0.6, 1.4))),
               _texture(geo.shape, rng))
    return _finish(colour, alpha, rng.uniform(0.3, 1.2) * w / 128)


def draw_shape(face: np.ndarray, geo: Geometry, rng: np.random.Generator, donors: Sequence[np.ndarray]) -> Layer:
    """A thing of no particular kind in the face's own colours: a polygon, a blob or a bent band whose
    surface is the median colour of the face's middle, shifted a little, shaded and grained. What covers a face is not
    always another colour than skin: this one can only be told by its outline and its flatness."""
    h, w = geo.shape
    colour, alpha = _empty(geo.shape)
    centre = _anchor(geo, rng, {"edge": 0.4, "mouth": 0.15, "eye": 0.15, "cheek": 0.2, "chin": 0.1})
    r = geo.width * rng.uniform(0.12, 0.35)
    form = int(rng.integers(3))
    if form == 0:  # a polygon of 3 to 7 corners
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = r * rng.uniform(0.5, 1.2, n)
        mask = _poly(geo.shape, centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1))
    elif form == 1:
        mask = _poly(geo.shape, _blob_pts(rng, centre, r, r * rng.uniform(0.4, 1.4)))
    else:  # a band, straight or bent, a finger's to a wrist's width
        d = rng.normal(0, 1, 2)
        d = d / max(np.linalg.norm(d), 1e-6) * r * rng.uniform(1.0, 2.5)
        bend = np.array([-d[1], d[0]]) * rng.uniform(-0.6, 0.6)
        mask = _stroke(geo.shape, _bezier(centre - d, centre + bend, centre + d), r * rng.uniform(0.3, 0.8))
    l, t, rr, b = (int(v) for v in geo.box)
    inner = face[t + (b - t) // 4:b - (b - t) // 4, l + (rr - l) // 4:rr - (rr - l) // 4].reshape(-1, 3)
    tone = np.median(inner, axis=0).astype(np.float32) if len(inner) else rng.uniform(40, 220, 3).astype(np.float32)
    tone = tone * rng.uniform(0.85, 1.15, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    shade = 1.0 + rng.uniform(0.0, 0.15) * ((np.cos(ang) * (xx - centre[0]) + np.sin(ang) * (yy - centre[1])) / max(r, 1.0))
    grain = cv2.resize(rng.normal(0, 8, (max(2, h // 8), max(2, w // 8))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    _paint(colour, alpha, mask, np.clip(tone * np.clip(shade, 0.7, 1.3)[..., None] + grain[..., None], 0, 255))
    return _finish(colour, alpha, rng.uniform(0.3, 1.2) * w / 128)


DRAWERS: dict[str, DrawFn] = {"patch": draw_patch, "hand": draw_hand, "hair": draw_hair,
                              "glasses": draw_glasses, "object": draw_object, "shape": draw_shape}
