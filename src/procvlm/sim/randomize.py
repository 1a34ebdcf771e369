"""Domain randomisation of MetaWorld rendering: camera pose, image orientation, lighting, colours
and effective resolution, drawn per episode from its seed. Visual only: nothing it touches
(cameras, lights, material colours, a backdrop added to the rendered scene, image resampling)
takes part in the physics, so an episode's state trajectory is the same with or without it.

Spaces of rendering conditions (``SPECS``), training and held-out ones disjoint:

- ``TRAIN``: the conditions a model is trained on (camera jitter around the corner camera, the
  image as rendered, mirrored left-right or rotated 180 degrees, moderate lighting changes,
  table and backdrop tints from half of the colour wheel, resolution down to 45 %);
- ``TRAIN_VIEWS``: ``TRAIN`` seen from more of MetaWorld's cameras: each episode's camera
  jitters around the corner camera for half of the episodes and around ``corner2``,
  ``corner3`` or ``topview`` (views from the far side and from above) for the others;
- ``HELDOUT``: conditions never drawn for training (larger camera offsets, the image flipped
  upside down, darker or brighter lighting from other directions, tints from the other half of
  the colour wheel, lower resolutions). Every parameter of a held-out draw lies outside the
  training ranges, so a model scored on them is scored on rendering it has not seen. The
  other views of ``TRAIN_VIEWS`` look 74 to 94 degrees away from the corner camera's axis
  (their jitter turns them by at most about 22; held-out draws turn the corner camera by at
  most about 34), so they add no held-out camera pose either.
- ``heldout-camera``, ``heldout-orientation``, ``heldout-light``, ``heldout-colour`` and
  ``heldout-resolution``: one factor of ``HELDOUT`` at a time (``HELDOUT_GROUPS``), the rest
  drawn from ``TRAIN``: which factor of held-out rendering a model fails on.

A draw is a :class:`RenderDraw`; ``Episode.meta["render"]`` records it as a dict.
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from procvlm.errors import ProcvlmError

log = logging.getLogger(__name__)

Ranges = tuple[tuple[float, float], ...]
"""A union of closed intervals; a value is drawn uniformly over their total length."""

ORIENTATIONS = ("none", "hflip", "rot180", "vflip")
"""How a rendered image is turned: as is, mirrored left-right, rotated 180 degrees, upside down."""

VIEWS = ("corner", "corner2", "corner3", "topview", "behind")
"""World cameras (short names of ``procvlm.sim.env.CAMERAS``) a draw's jitter can start from;
the gripper's camera moves with the hand and is never jittered."""

TABLE_CENTRE = np.array([0.0, 0.6, 0.0])
"""Point of MetaWorld's table the jittered camera turns around (its optical axis's nearest)."""

MAX_ELEVATION = 89.0
"""Largest camera elevation (degrees, up or down) of a jittered camera: beyond 90 the view
would turn over the pole."""

BACKDROP_DISTANCE = 4.0
"""Metres behind the camera's focus where the coloured backdrop is drawn."""


def _sectors(start: int) -> Ranges:
    """Six 30-degree hue sectors (as fractions of the wheel), every other one from ``start``."""
    return tuple(((k * 30 + start) / 360, (k * 30 + start + 30) / 360) for k in range(0, 12, 2))


def _check_ranges(name: str, ranges: Ranges) -> None:
    if not ranges or any(len(r) != 2 or not r[0] <= r[1] for r in ranges):
        raise ValueError(f"RandomizeSpec {name}={ranges!r}: give one or more (low, high) pairs "
                         "with low <= high")


def _draw(rng: np.random.Generator, ranges: Ranges) -> float:
    widths = np.array([hi - lo for lo, hi in ranges], dtype=np.float64)
    k = int(rng.choice(len(ranges), p=widths / widths.sum())) if widths.sum() > 0 else 0
    lo, hi = ranges[k]
    return float(rng.uniform(lo, hi))


def _inside(value: float, ranges: Ranges) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


@dataclass(frozen=True)
class RenderDraw:
    """One episode's rendering conditions.

    Attributes:
        spec: name of the space it was drawn from ("train", "heldout").
        azimuth: camera azimuth offset (degrees) around the table centre.
        elevation: camera elevation offset (degrees).
        distance: camera distance, as a factor of the original distance.
        lookat: (3,) offset (m) of the point the camera looks at.
        orientation: one of ``ORIENTATIONS``.
        light_azimuth: rotation (degrees) of every light's direction about the vertical.
        light: factor on the lights' diffuse and specular intensity.
        ambient: ambient intensity of the headlight (MetaWorld's is 0.4).
        table_hsv: (3,) tint of the table's wood and walls (hue, saturation, value in [0, 1]).
        backdrop_hsv: (3,) colour behind the scene (hue, saturation, value).
        resolution: effective resolution as a fraction of the image size (1 = as rendered).
        view: the world camera (a short name of ``procvlm.sim.env.CAMERAS``) whose pose the
            jitter starts from; None: the camera being rendered.
    """

    spec: str
    azimuth: float
    elevation: float
    distance: float
    lookat: tuple[float, float, float]
    orientation: str
    light_azimuth: float
    light: float
    ambient: float
    table_hsv: tuple[float, float, float]
    backdrop_hsv: tuple[float, float, float]
    resolution: float
    view: str | None = None

    def __post_init__(self) -> None:
        if self.view is not None and self.view not in VIEWS:
            raise ValueError(f"RenderDraw view={self.view!r}: choose from {', '.join(VIEWS)}")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"RenderDraw orientation={self.orientation!r}: choose from "
                             f"{', '.join(ORIENTATIONS)}")
        if not 0 < self.resolution <= 1 or self.distance <= 0:
            raise ValueError(f"RenderDraw resolution={self.resolution}, distance="
                             f"{self.distance}: need 0 < resolution <= 1 and distance > 0")

    @property
    def table_rgb(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(*self.table_hsv)

    @property
    def backdrop_rgb(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(*self.backdrop_hsv)

    def to_dict(self) -> dict:
        """JSON-able record for ``Episode.meta["render"]``."""
        d = asdict(self)
        if d["view"] is None:   # records of draws without a view read as before
            del d["view"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> RenderDraw:
        """Inverse of :meth:`to_dict`."""
        tuples = ("lookat", "table_hsv", "backdrop_hsv")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


@dataclass(frozen=True)
class RandomizeSpec:
    """A space of rendering conditions: each parameter's values as a union of intervals.

    Hues are fractions of the colour wheel; a tint is ``hsv(hue, saturation, value)``.
    ``views`` are (world camera, weight) pairs: the camera whose pose each episode's jitter
    starts from is drawn with these weights (empty: the camera being rendered).
    """

    name: str
    azimuth: Ranges
    elevation: Ranges
    distance: Ranges
    lookat: Ranges
    orientations: tuple[str, ...]
    light_azimuth: Ranges
    light: Ranges
    ambient: Ranges
    table_hue: Ranges
    table_saturation: Ranges
    table_value: Ranges
    backdrop_hue: Ranges
    backdrop_saturation: Ranges
    backdrop_value: Ranges
    resolution: Ranges
    views: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if key not in ("name", "orientations", "views"):
                _check_ranges(key, value)
        if any(len(v) != 2 or v[0] not in VIEWS or not v[1] > 0 for v in self.views):
            raise ValueError(f"RandomizeSpec views={self.views!r}: give (camera, weight) pairs "
                             f"with a weight above 0 and a camera from {', '.join(VIEWS)}")
        bad = [o for o in self.orientations if o not in ORIENTATIONS]
        if not self.orientations or bad:
            raise ValueError(f"RandomizeSpec orientations={self.orientations!r}: choose from "
                             f"{', '.join(ORIENTATIONS)}")

    def draw(self, rng: np.random.Generator) -> RenderDraw:
        """One set of rendering conditions drawn from ``rng``."""
        def hsv(hue: Ranges, sat: Ranges, val: Ranges) -> tuple[float, float, float]:
            return _draw(rng, hue), _draw(rng, sat), _draw(rng, val)

        draw = RenderDraw(
            spec=self.name, azimuth=_draw(rng, self.azimuth),
            elevation=_draw(rng, self.elevation), distance=_draw(rng, self.distance),
            lookat=tuple(_draw(rng, self.lookat) for _ in range(3)),
            orientation=str(self.orientations[int(rng.integers(len(self.orientations)))]),
            light_azimuth=_draw(rng, self.light_azimuth), light=_draw(rng, self.light),
            ambient=_draw(rng, self.ambient),
            table_hsv=hsv(self.table_hue, self.table_saturation, self.table_value),
            backdrop_hsv=hsv(self.backdrop_hue, self.backdrop_saturation, self.backdrop_value),
            resolution=_draw(rng, self.resolution))
        if not self.views:      # no draw spent: the draws of specs without views stay as they were
            return draw
        weights = np.array([w for _, w in self.views], dtype=np.float64)
        view = self.views[int(rng.choice(len(self.views), p=weights / weights.sum()))][0]
        return replace(draw, view=view)

    def overlap(self, draw: RenderDraw) -> list[str]:
        """Names of ``draw``'s parameters whose values lie inside this space's ranges.

        Tints are compared by hue and saturation.
        """
        inside = [k for k in ("azimuth", "elevation", "distance", "light_azimuth", "light",
                              "ambient", "resolution")
                  if _inside(getattr(draw, k), getattr(self, k))]
        if any(_inside(v, self.lookat) for v in draw.lookat):
            inside.append("lookat")
        if draw.orientation in self.orientations:
            inside.append("orientation")
        for key, hues, sats in (("table", self.table_hue, self.table_saturation),
                                ("backdrop", self.backdrop_hue, self.backdrop_saturation)):
            h, s, _ = getattr(draw, f"{key}_hsv")
            if _inside(h, hues) and _inside(s, sats):
                inside.append(key)
        return inside


TRAIN = RandomizeSpec(
    name="train", azimuth=((-20.0, 20.0),), elevation=((-8.0, 8.0),),
    distance=((0.85, 1.15),), lookat=((-0.05, 0.05),),
    orientations=("none", "hflip", "rot180"),
    light_azimuth=((-60.0, 60.0),), light=((0.6, 1.4),), ambient=((0.2, 0.5),),
    table_hue=_sectors(0), table_saturation=((0.0, 0.5),), table_value=((0.6, 1.0),),
    backdrop_hue=_sectors(0), backdrop_saturation=((0.0, 0.6),),
    backdrop_value=((0.0, 0.6),), resolution=((0.45, 1.0),))
"""Rendering conditions for training."""

TRAIN_VIEWS = replace(TRAIN, name="train-views", views=(("corner", 3.0), ("corner2", 1.0),
                                                        ("corner3", 1.0), ("topview", 1.0)))
"""``TRAIN`` with the jitter starting from the corner camera for half of the episodes and from
one of three other views (far side, far side from higher up, straight down) for the rest."""

HELDOUT = RandomizeSpec(
    name="heldout", azimuth=((-32.0, -22.0), (22.0, 32.0)),
    elevation=((-14.0, -9.0), (9.0, 12.0)), distance=((0.75, 0.83), (1.17, 1.25)),
    lookat=((-0.08, -0.06), (0.06, 0.08)), orientations=("vflip",),
    light_azimuth=((-120.0, -70.0), (70.0, 120.0)), light=((0.35, 0.5), (1.5, 1.8)),
    ambient=((0.05, 0.15), (0.55, 0.65)),
    table_hue=_sectors(30), table_saturation=((0.25, 0.5),), table_value=((0.6, 1.0),),
    backdrop_hue=_sectors(30), backdrop_saturation=((0.3, 0.6),),
    backdrop_value=((0.25, 0.6),), resolution=((0.3, 0.42),))
"""Rendering conditions never drawn for training (every parameter outside ``TRAIN``)."""

HELDOUT_GROUPS: dict[str, tuple[str, ...]] = {
    "camera": ("azimuth", "elevation", "distance", "lookat"),
    "orientation": ("orientations",),
    "light": ("light_azimuth", "light", "ambient"),
    "colour": ("table_hue", "table_saturation", "table_value", "backdrop_hue",
               "backdrop_saturation", "backdrop_value"),
    "resolution": ("resolution",),
}
"""The factors of held-out rendering, each a group of ``RandomizeSpec`` fields: the space
``heldout-<factor>`` takes that group from ``HELDOUT`` and every other field from ``TRAIN``, so
one factor at a time lies outside the training conditions."""

def heldout_factor(group: str) -> RandomizeSpec:
    """``TRAIN`` with the fields of ``HELDOUT_GROUPS[group]`` taken from ``HELDOUT``."""
    return replace(TRAIN, name=f"heldout-{group}",
                   **{f: getattr(HELDOUT, f) for f in HELDOUT_GROUPS[group]})


SPECS: dict[str, RandomizeSpec] = {"train": TRAIN, "heldout": HELDOUT,
                                   "train-views": TRAIN_VIEWS,
                                   **{f"heldout-{g}": heldout_factor(g) for g in HELDOUT_GROUPS}}
# The order seeds each space's draws (``episode_draw``): new spaces go last.
RANDOMIZE_CHOICES = ("none", *SPECS)
"""Values of ``procvlm generate --randomize``."""


def check_randomize(name: str) -> str:
    """``name`` when it is one of ``RANDOMIZE_CHOICES``.

    Raises:
        ProcvlmError: unknown name.
    """
    if name not in RANDOMIZE_CHOICES:
        raise ProcvlmError(f"unknown rendering randomisation {name!r}: choose from "
                           f"{', '.join(RANDOMIZE_CHOICES)}")
    return name


def episode_draw(randomize: str, seed: int) -> RenderDraw | None:
    """The rendering conditions of the episode with ``seed`` (None for ``"none"``)."""
    if check_randomize(randomize) == "none":
        return None
    rng = np.random.default_rng([int(seed) % (2**63), 0x5EED, RANDOMIZE_CHOICES.index(randomize)])
    return SPECS[randomize].draw(rng)


class SceneStyle:
    """Applies a draw's lighting and colours to a MuJoCo model, restoring the originals first.

    Only visual fields change: light directions and intensities, the headlight, material
    colours (the table's wood and walls). The model's defaults are recorded once at creation.
    """

    MATERIALS = ("table_wood", "wall_metal", "basic_floor")

    def __init__(self, model) -> None:
        self.model = model
        names = [model.mat(i).name for i in range(model.nmat)]
        self._mats = [names.index(n) for n in self.MATERIALS if n in names]
        self._light_dir = model.light_dir.copy()
        self._light_diffuse = model.light_diffuse.copy()
        self._light_specular = model.light_specular.copy()
        self._head_ambient = model.vis.headlight.ambient.copy()
        self._mat_rgba = model.mat_rgba[self._mats].copy()

    def apply(self, draw: RenderDraw | None) -> None:
        """Set the model's lights and colours for ``draw`` (the originals for None)."""
        m = self.model
        m.light_dir[:] = self._light_dir
        m.light_diffuse[:] = self._light_diffuse
        m.light_specular[:] = self._light_specular
        m.vis.headlight.ambient[:] = self._head_ambient
        m.mat_rgba[self._mats] = self._mat_rgba
        if draw is None:
            return
        a = np.radians(draw.light_azimuth)
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0, 0, 1.0]])
        m.light_dir[:] = self._light_dir @ rot.T
        m.light_diffuse[:] = np.clip(self._light_diffuse * draw.light, 0.0, 1.0)
        m.light_specular[:] = np.clip(self._light_specular * draw.light, 0.0, 1.0)
        m.vis.headlight.ambient[:] = draw.ambient
        m.mat_rgba[self._mats, :3] = self._mat_rgba[:, :3] * np.asarray(draw.table_rgb)


def free_camera(cam_pos: np.ndarray, cam_xmat: np.ndarray, draw: RenderDraw):
    """A MuJoCo free camera at a fixed camera's pose, jittered by ``draw``.

    The free camera turns around the point of the fixed camera's optical axis nearest the table
    centre; with no jitter it sees what the fixed camera sees (the right way up).
    """
    import mujoco

    xmat = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3)
    forward = -xmat[:, 2]
    dist = float(forward @ (TABLE_CENTRE - cam_pos))
    # Looking straight down (MetaWorld's top view) the azimuth is where the image's top points.
    heading = forward if np.hypot(forward[0], forward[1]) > 1e-3 else xmat[:, 1]
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = cam_pos + dist * forward + np.asarray(draw.lookat)
    cam.distance = dist * draw.distance
    cam.azimuth = float(np.degrees(np.arctan2(heading[1], heading[0]))) + draw.azimuth
    elevation = float(np.degrees(np.arcsin(np.clip(forward[2], -1, 1)))) + draw.elevation
    cam.elevation = float(np.clip(elevation, -MAX_ELEVATION, MAX_ELEVATION))
    return cam


def add_backdrop(scene, cam, rgb: tuple[float, float, float]) -> None:
    """Draw a flat, unlit ``rgb`` wall behind everything the free camera ``cam`` sees."""
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        log.warning("scene is full (%d geoms): no backdrop drawn", scene.maxgeom)
        return
    az, el = np.radians(cam.azimuth), np.radians(cam.elevation)
    forward = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    right = np.array([np.sin(az), -np.cos(az), 0.0])
    up = np.cross(right, forward)
    rot = np.stack([right, up, -forward], axis=1)        # columns: the wall's x, y, z axes
    pos = np.asarray(cam.lookat) + BACKDROP_DISTANCE * forward
    geom = scene.geoms[scene.ngeom]
    mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_BOX, np.array([20.0, 20.0, 0.01]), pos,
                        rot.reshape(-1), np.array([*rgb, 1.0], dtype=np.float32))
    geom.emission = 1.0
    geom.specular = 0.0
    scene.ngeom += 1


def lower_resolution(img: np.ndarray, resolution: float) -> np.ndarray:
    """(H, W, 3) ``img`` at ``resolution`` of its size (box filter), scaled back up (bilinear)."""
    if resolution >= 1.0:
        return img
    from PIL import Image

    h, w = img.shape[:2]
    small = (max(4, round(w * resolution)), max(4, round(h * resolution)))
    pil = Image.fromarray(np.ascontiguousarray(img)).resize(small, Image.Resampling.BOX)
    return np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR))


def orient(img: np.ndarray, orientation: str) -> np.ndarray:
    """(H, W, 3) ``img`` turned as one of ``ORIENTATIONS`` says."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation={orientation!r}: choose from {', '.join(ORIENTATIONS)}")
    if orientation == "hflip":
        img = img[:, ::-1]
    elif orientation == "vflip":
        img = img[::-1]
    elif orientation == "rot180":
        img = img[::-1, ::-1]
    return np.ascontiguousarray(img)


def postprocess(img: np.ndarray, draw: RenderDraw) -> np.ndarray:
    """Lower the effective resolution and turn the image as ``draw`` says."""
    return orient(lower_resolution(img, draw.resolution), draw.orientation)
