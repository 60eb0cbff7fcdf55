"""pyproject.toml's dependencies are requirements.txt's pins (pytest only as the `test` extra), so that
`pip install -e .` never moves jax or any other pinned package away from what requirements.txt installed."""
import pytest

from helpers import ROOT

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_pyproject_dependencies_are_the_requirements_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    assert project["dependencies"] == [r for r in reqs if not r.startswith("pytest")]
    assert project["optional-dependencies"]["test"] == [r for r in reqs if r.startswith("pytest")]


def test_every_subpackage_is_installed():
    """A plain (non-editable) install ships only the packages listed in pyproject.toml: each folder of the package
    must be there, and the embedded MNIST subset with it."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = sorted(".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "subliminal_jax").rglob("__init__.py"))
    assert sorted(tool["packages"]) == folders
    data = [(pkg, pattern) for pkg, patterns in tool["package-data"].items() for pattern in patterns]
    assert all(list((ROOT / pkg.replace(".", "/")).glob(pattern)) for pkg, pattern in data)
    assert ("subliminal_jax.mnist", "datasets/*/*") in data
