"""``procvlm view``: draw one episode's frame strip with its sub-steps (and progress curves
when the dataset has labels)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from procvlm.errors import ProcvlmError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="LeRobot v3 dataset folder or .hdf5 file")
    p.add_argument("--episode", type=int, default=0, help="episode index (default: 0)")
    p.add_argument("--out", default=None, help="PNG file (default: episode_<i>.png here)")
    p.add_argument("--frames", type=int, default=8, help="frames in the strip (default: 8)")
    p.add_argument("--camera", default=None, help="camera to show (default: the main one)")


def _curves(root: Path, episode: int) -> dict[str, np.ndarray] | None:
    """Progress curves per label scheme, when the labels package and stored labels exist."""
    try:
        from procvlm.labels import scheme_curves
    except ImportError:
        return None
    if not (root / "meta" / "procvlm" / "labels.parquet").exists():
        return None
    return scheme_curves(root, episode)


def run(args: argparse.Namespace) -> int:
    from procvlm.data import open_dataset
    from procvlm.viz import draw_strip

    ds = open_dataset(args.dataset)
    if args.episode not in ds.episode_indices:
        raise ProcvlmError(f"episode {args.episode} is not in {args.dataset} (it has episodes "
                           f"0..{ds.num_episodes - 1}): pass --episode within that range")
    ep = ds.episode(args.episode)
    curves = _curves(Path(ds.root), args.episode)
    out = Path(args.out or f"episode_{args.episode}.png")
    draw_strip(ep, out, frames=args.frames, camera=args.camera, curves=curves)
    print(f"wrote {out}")
    return 0
