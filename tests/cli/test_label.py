"""``procvlm label`` end to end on a tiny LeRobot dataset, its options and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset
from procvlm.labels import read_labels, read_provenance

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def tiny_episode(i: int, T: int = 10, oracle: bool = True) -> Episode:
    frames = np.random.default_rng(i).integers(0, 255, size=(T, 16, 16, 3), dtype=np.uint8)
    return Episode(episode_index=i, task="put the puck on the goal", fps=10.0,
                   frames={"corner": ArrayFrames(frames)}, state=np.zeros((T, 2), np.float32),
                   action=np.zeros((T, 2), np.float32), success=True,
                   plan=list(PLAN) if oracle else None,
                   subtasks=[Subtask(PLAN[0], 0, 4), Subtask(PLAN[1], 4, 8)] if oracle else None)


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [tiny_episode(0), tiny_episode(1)], video=False)
    return root


def test_label_cli_defaults(dataset, capsys):
    assert main(["label", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "labels written to" in out and "labels.parquet" in out and "20 frames" in out
    table = read_labels(dataset)
    assert table.num_rows == 20
    assert table["progress"].to_numpy()[-1] == 1.0
    prov = read_provenance(dataset)
    assert (prov["annotator"], prov["scheme"], prov["measure"]) == ("oracle", "procvlm", "phash")


def test_label_cli_options(dataset):
    rc = main(["label", str(dataset), "--scheme", "procvlm-paper", "--measure", "l1",
               "--floor", "0.25", "--uncompleted-fraction", "0.3"])
    assert rc == 0
    prov = read_provenance(dataset)
    assert prov["scheme"] == "procvlm-paper" and prov["measure"] == "l1"
    assert prov["params"] == {"floor": 0.25, "uncompleted_fraction": 0.3, "clip": [0.75, 1.25],
                              "noise": 0.0}
    table = read_labels(dataset)
    np.testing.assert_array_equal(table["progress"].to_numpy(),
                                  table["progress_procvlm_paper"].to_numpy())


def test_label_cli_passes_annotator_args(dataset, capsys):
    # the oracle takes no arguments: a one-line error names them
    assert main(["label", str(dataset), "--annotator-arg", "threshold=0.5"]) == 2
    err = capsys.readouterr().err
    assert "threshold: the oracle annotator has no such option" in err
    assert len(err.strip().splitlines()) == 1


def test_label_cli_types_annotator_args(tmp_path, capsys):
    """Finding 4: ints, comma lists and config fields given on the command line."""
    T = 30
    state = np.zeros((T, 5), np.float32)
    state[:, :3] = np.linspace(0, 0.3, T)[:, None]
    state[10:, 3] = -1.0  # the gripper (column 3) closes at frame 10
    ep = Episode(episode_index=0, task="pick the cube", fps=10.0,
                 frames={"corner": ArrayFrames(np.zeros((T, 16, 16, 3), np.uint8))},
                 state=state, action=np.zeros((T, 2), np.float32), success=True,
                 meta={"state_names": [f"s{i}" for i in range(5)]})
    root = write_dataset(tmp_path / "ds", [ep], video=False)
    args = ["label", str(root), "--annotator", "gripper", "--annotator-arg", "gripper_dims=3",
            "--annotator-arg", "hand_dims=0,1,2", "--annotator-arg", "objects=cube",
            "--annotator-arg", "smooth=1", "--annotator-arg", "gripper_open_high=true"]
    assert main(args) == 0, capsys.readouterr().err
    assert read_provenance(root)["annotator"] == "gripper"
    assert read_labels(root)["subtask"].to_pylist()[0] == "Move to the cube"
    capsys.readouterr()
    for bad, says in [("smooth=1.5", "smooth='1.5': not int; the gripper annotator takes "
                                     "smooth=int (default: 3)"),
                      ("hand_dims=a,b", "hand_dims='a,b'"),
                      ("gripper_open_high=maybe", "not a bool"),
                      ("smooth=0", "smooth=0: need a window")]:
        assert main(["label", str(root), "--annotator", "gripper",
                     "--annotator-arg", bad]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_label_help_lists_annotator_options(capsys):
    assert main(["label", "--help"]) == 0
    out = capsys.readouterr().out
    assert "gripper_dims=list of int or none" in out and "base_url=str or none" in out


def test_label_cli_errors(tmp_path, capsys):
    assert main(["label", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    root = tmp_path / "plain"
    write_dataset(root, [tiny_episode(0, oracle=False)], video=False)
    assert main(["label", str(root)]) == 2
    err = capsys.readouterr().err
    assert "procvlm label: error:" in err and "oracle" in err
    assert main(["label", str(root), "--scheme", "linear"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["label", str(root), "--annotator-arg", "no-equals-sign"]) == 2
    assert "no-equals-sign" in capsys.readouterr().err
    assert main(["label", str(root), "--floor", "-1"]) == 2
    assert "floor" in capsys.readouterr().err


def test_label_cli_does_not_import_torch(dataset):
    code = ("import sys; from procvlm.cli.main import main; rc = main(['label', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(dataset)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((dataset / "meta" / "procvlm" / "plans.json").read_text()) == {
        "put the puck on the goal": PLAN}
