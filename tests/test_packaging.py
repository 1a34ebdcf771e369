"""pyproject.toml's dependency floors admit no version the code cannot run on."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]

# (what the code calls, package, the first version that has it)
NEEDS = [("np.bitwise_count", "numpy", (2, 0))]


def floors() -> dict[str, tuple[int, ...]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        deps += extra
    out = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+).*", dep.strip())
        if m:
            out[m.group(1).lower()] = tuple(int(x) for x in m.group(2).split("."))
    return out


def test_dependency_floors_match_the_code():
    code = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    have = floors()
    for call, package, version in NEEDS:
        if call in code:
            assert have.get(package, (0,)) >= version, (
                f"the code calls {call} (needs {package}>={'.'.join(map(str, version))}) but "
                f"pyproject.toml allows {package}>={'.'.join(map(str, have.get(package, (0,))))}")


def test_license_is_an_spdx_expression_for_the_build_backend():
    # a TOML table is deprecated by setuptools (a warning at every install, later an error);
    # the plain SPDX string needs setuptools >= 77
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["license"] == "Apache-2.0"
    floors = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert floors == ["setuptools>=77"]
