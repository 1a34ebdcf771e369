import os
import stat

import pytest

from procvlm._io import atomic_path, write_json, write_text


def test_write_replaces_atomically_with_plain_permissions(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"x": 1})
    assert target.read_text().strip().startswith("{")
    mode = stat.S_IMODE(os.stat(target).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
