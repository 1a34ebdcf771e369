"""Loading a script of ``benchmarks/`` as a module (the folder is not a package)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def load_benchmark():
    """``load_benchmark("quality")`` imports ``benchmarks/quality.py`` and returns the module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark",
                                                      BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
        spec.loader.exec_module(module)
        return module

    return load
