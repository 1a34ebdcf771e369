"""A MetaWorld v3 environment with its scripted expert, fast offscreen cameras, and the
state facts the sub-step oracle reads (gripper centre, object position, pad contacts)."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np

from procvlm.errors import ProcvlmError
from procvlm.sim.randomize import RenderDraw, SceneStyle, add_backdrop, free_camera, postprocess
from procvlm.sim.tasks import TaskSpec

log = logging.getLogger(__name__)

CAMERAS: dict[str, str] = {
    "corner": "corner", "corner2": "corner2", "corner3": "corner3", "topview": "topview",
    "gripper": "gripperPOV", "behind": "behindGripper",
}
"""Short camera name -> camera name in MetaWorld's XML."""

_UPSIDE_DOWN = {"corner", "corner2", "corner3"}
# The corner cameras' y axis points down in MetaWorld's XML, so their images come out rotated
# by 180 degrees; rotating back puts the table at the bottom without mirroring the scene.

STATE_NAMES: list[str] = (
    ["hand_x", "hand_y", "hand_z", "gripper"]
    + [f"obj{k}_{c}" for k in (1, 2) for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
    + ["prev_hand_x", "prev_hand_y", "prev_hand_z", "prev_gripper"]
    + [f"prev_obj{k}_{c}" for k in (1, 2) for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
    + ["goal_x", "goal_y", "goal_z"]
)
"""Names of the 39 entries of MetaWorld's observation (frame-stacked, goal visible)."""

ACTION_NAMES: list[str] = ["dx", "dy", "dz", "grip"]


@dataclass
class SimFacts:
    """What the oracle reads from the simulator at one frame."""

    tcp: np.ndarray        # (3,) centre between the gripper pads
    obj: np.ndarray        # (3,) object position (observation entries 4:7)
    gripper: float         # pad opening in [0, 1]
    grasped: bool          # both pads touch the object
    success: bool          # MetaWorld's info["success"]
    pads: int = 0          # pads (0, 1 or 2) touching the object
    goal_gap: float = 0.0  # what is left of the task's goal measure (``SimEnv.goal_gap``)


STILL = 1e-3
"""Most motion (m per frame) of the gripper centre and of the object in a still frame."""


def still(before: SimFacts | None, now: SimFacts | None) -> bool:
    """Whether the scene hardly moved from ``before`` to ``now`` (an arm holding still coasts
    for a few frames after its last motion command; the still stretch starts after that)."""
    if before is None or now is None:
        return False
    return (float(np.linalg.norm(now.tcp - before.tcp)) < STILL
            and float(np.linalg.norm(now.obj - before.obj)) < STILL
            and abs(now.gripper - before.gripper) < 0.01)


def _check_gl() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


SAMPLES = 4
"""Multisamples per pixel of an antialiased image (MuJoCo's offscreen default)."""


class Cameras:
    """Offscreen rendering of several cameras with shadows and reflections off (speed).

    Without ``antialias`` the images are rendered with one sample per pixel: on a software
    renderer (Mesa's llvmpipe, what a machine without a GPU uses) MuJoCo's default 4x
    multisampling makes rendering a frame about 2.4 times as expensive (25 against 10.5 CPU ms
    at 128 px), for edges smoother by a pixel.
    """

    def __init__(self, model, names: tuple[str, ...], width: int, height: int, *,
                 antialias: bool = False) -> None:
        import mujoco

        unknown = [n for n in names if n not in CAMERAS]
        if unknown:
            raise ProcvlmError(f"unknown camera(s) {unknown}: choose from {', '.join(CAMERAS)}")
        if width < 16 or height < 16:
            raise ProcvlmError(f"image size {width}x{height} is too small: use at least 16x16")
        self.names = tuple(names)
        self._option = mujoco.MjvOption()
        self._renderer = None
        if not self.names:  # state only (policy rollouts): no GL context
            return
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        model.vis.quality.offsamples = SAMPLES if antialias else 0  # read when the buffers open
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0

    def render(self, data, draw: RenderDraw | None = None) -> dict[str, np.ndarray]:
        """One (H, W, 3) uint8 image per camera, the right way up, or as ``draw`` says."""
        out = {}
        for name in self.names:
            if draw is None:
                self._renderer.update_scene(data, camera=CAMERAS[name],
                                            scene_option=self._option)
                img = self._renderer.render()
                out[name] = np.ascontiguousarray(img[::-1, ::-1] if name in _UPSIDE_DOWN else img)
            else:
                out[name] = postprocess(self._render_drawn(data, name, draw), draw)
        return out

    def _render_drawn(self, data, name: str, draw: RenderDraw) -> np.ndarray:
        """A world camera moved by ``draw``; the first (main) camera from ``draw.view``'s pose
        where it names one, the others from their own (the gripper's camera stays on the
        hand)."""
        if name == "gripper":
            self._renderer.update_scene(data, camera=CAMERAS[name], scene_option=self._option)
            return self._renderer.render()
        base = draw.view if draw.view and name == self.names[0] else name
        cam_id = data.model.cam(CAMERAS[base]).id
        cam = free_camera(data.cam_xpos[cam_id], data.cam_xmat[cam_id], draw)
        self._renderer.update_scene(data, camera=cam, scene_option=self._option)
        add_backdrop(self._renderer.scene, cam, draw.backdrop_rgb)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()


def metaworld_env(spec: TaskSpec) -> object:
    """The MetaWorld v3 environment of ``spec``, goal observable, with object and goal drawn
    from the seed passed to its ``seed()`` (what metaworld's goal-observable classes do)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[spec.env_name]()
    env._partially_observable = False
    env.__dict__.pop("sawyer_observation_space", None)
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env._set_task_called = True
    return env


class SimEnv:
    """One MetaWorld v3 task: environment (goal observable), scripted expert, cameras
    (antialiased with ``antialias``, see ``Cameras``)."""

    def __init__(self, spec: TaskSpec, *, width: int = 128, height: int = 128,
                 cameras: tuple[str, ...] = ("corner", "gripper"),
                 antialias: bool = False) -> None:
        _check_gl()
        import metaworld.policies as policies

        self.spec = spec
        env = metaworld_env(spec)
        self.env = env
        self.policy = getattr(policies, spec.policy)()
        self.cameras = Cameras(env.model, cameras, width, height, antialias=antialias)
        self._style = SceneStyle(env.model)
        self.draw: RenderDraw | None = None
        self._pads = (env.model.geom("leftpad_geom").id, env.model.geom("rightpad_geom").id)
        self._obj_geoms = (self._subtree_geoms(spec.obj_body) if spec.obj_body
                           else np.zeros(0, dtype=np.int64))

    def _subtree_geoms(self, body: str) -> np.ndarray:
        m = self.env.model
        root = m.body(body).id
        geoms = []
        for g in range(m.ngeom):
            b = int(m.geom_bodyid[g])
            while b not in (0, root):
                b = int(m.body_parentid[b])
            if b == root:
                geoms.append(g)
        return np.asarray(geoms, dtype=np.int64)

    def reset(self, seed: int) -> np.ndarray:
        """Reset to the object and goal positions drawn from ``seed``; returns the observation."""
        self.env.seed(int(seed) % (2**32))
        self.env._did_see_sim_exception = False
        obs, _ = self.env.reset()
        return obs

    def expert_action(self, obs: np.ndarray) -> np.ndarray:
        """The scripted expert's action for ``obs``."""
        with warnings.catch_warnings():
            # The policies warn that their gains exceed [-1, 1]; the env clips actions anyway.
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(self.policy.get_action(obs), dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """Apply ``action``; returns (observation, MetaWorld success)."""
        obs, _, _, _, info = self.env.step(np.asarray(action, dtype=np.float32))
        return obs, bool(info["success"])

    def pads_touching(self) -> int:
        """How many of the two gripper pads are in contact with the task's object."""
        d = self.env.data
        if d.ncon == 0 or self._obj_geoms.size == 0:
            return 0
        g1, g2 = d.contact.geom1[:d.ncon], d.contact.geom2[:d.ncon]
        with_obj = np.isin(g1, self._obj_geoms) | np.isin(g2, self._obj_geoms)
        return sum(bool(np.any(with_obj & ((g1 == p) | (g2 == p)))) for p in self._pads)

    def grasped(self) -> bool:
        """True when both gripper pads are in contact with the task's object."""
        return self.pads_touching() == 2

    def goal_gap(self, obs: np.ndarray) -> float:
        """Distance (m) still to close on the task's goal measure (``TaskSpec.goal``)."""
        goal, kind = np.asarray(obs[36:39], dtype=np.float64), self.spec.goal
        if kind == "object":
            return float(np.linalg.norm(obs[4:7] - goal))
        if kind == "handle":
            return float(np.linalg.norm(obs[11:14] - goal))
        if kind == "peg-head":
            return float(np.linalg.norm(self.env.data.site("pegHead").xpos - goal))
        if kind in ("nut-on-peg", "nut-off-peg"):
            nut = self.env.data.site("RoundNut").xpos
            if kind == "nut-off-peg":
                return max(0.0, float(goal[2] - obs[6]))
            # Over the peg (centre within reach of its axis), then down below its top.
            return float(np.linalg.norm(nut[:2] - goal[:2]) + max(0.0, nut[2] - goal[2]))
        if kind == "nail":
            head = np.asarray(obs[4:7]) + np.array([0.16, 0.06, 0.0])  # as MetaWorld's reward
            depth = float(self.env.data.joint("NailSlideJoint").qpos[0])
            return float(np.linalg.norm(head - goal)) + max(0.0, 0.09 - depth)
        raise ValueError(f"task {self.spec.name!r} has unknown goal measure {kind!r}")

    def facts(self, obs: np.ndarray, success: bool) -> SimFacts:
        pads = self.pads_touching()
        return SimFacts(tcp=np.array(self.env.tcp_center), obj=np.array(obs[4:7]),
                        gripper=float(obs[3]), grasped=pads == 2, success=success, pads=pads,
                        goal_gap=self.goal_gap(obs))

    def set_render(self, draw: RenderDraw | None) -> None:
        """Render the following frames under ``draw``'s conditions (None: MetaWorld's own).

        Visual only: lights, material colours and cameras never enter the physics.
        """
        self._style.apply(draw)
        self.draw = draw

    def render(self) -> dict[str, np.ndarray]:
        return self.cameras.render(self.env.data, self.draw)

    def close(self) -> None:
        self.cameras.close()
        self.env.close()
