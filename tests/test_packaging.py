"""The set-up files agree with each other, so `make`, pip and conda install the same kit on the same Pythons."""
import fnmatch
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli there
    import tomli as tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch", "python-build": "build", "playwright-python": "playwright"}  # conda -> PyPI


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _conda(spec: str) -> tuple[str, SpecifierSet]:
    """'ipywidgets>=8.1,<9' -> ('ipywidgets', SpecifierSet('>=8.1,<9')), with the conda name mapped to PyPI's."""
    name, bounds = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip()).groups()
    return CONDA_NAMES.get(_canonical(name), _canonical(name)), SpecifierSet(bounds.replace(" ", ""))


def _floor(requires_python: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires_python.strip()).groups()
    return int(major), int(minor)


def test_one_python_floor_everywhere():
    major, minor = _floor(_pyproject()["project"]["requires-python"])
    assert (major, minor) >= (3, 10)
    conda_python = [d for d in _environment()["dependencies"] if isinstance(d, str) and _conda(d)[0] == "python"]
    assert conda_python == [f"python>={major}.{minor}"]
    readme = (ROOT / "README.md").read_text()
    assert f"Python >= {major}.{minor}" in readme
    assert not {f for f in re.findall(r"Python >= (\d+\.\d+)", readme) if f != f"{major}.{minor}"}
    makefile = (ROOT / "Makefile").read_text()
    assert f"sys.version_info < ({major}, {minor})" in makefile and f"Python >= {major}.{minor}" in makefile
    # the tests run on the floor too: tomllib is 3.11+, so the test extra brings tomli below that
    if (major, minor) < (3, 11):
        test_extra = [Requirement(r) for r in _pyproject()["project"]["optional-dependencies"]["test"]]
        tomli = [r for r in test_extra if r.name == "tomli"]
        assert tomli and tomli[0].marker is not None and tomli[0].marker.evaluate({"python_version": "3.10"})


def test_environment_yml_has_the_same_dependencies_and_bounds_as_pyproject():
    project = _pyproject()["project"]
    wanted: dict[str, SpecifierSet] = {}
    for line in project["dependencies"] + [r for extra in ("test", "compress")
                                           for r in project["optional-dependencies"][extra]]:
        req = Requirement(line)  # markers (tomli on Python < 3.11) have no conda form: conda installs it always
        name = _canonical(req.name)
        assert wanted.setdefault(name, req.specifier) == req.specifier, f"{name} has two different bounds"
    env = _environment()
    assert env["channels"] == ["conda-forge"]
    conda = dict(_conda(d) for d in env["dependencies"] if isinstance(d, str))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip  # the pip section installs the kit itself
    from_pip = {_canonical(r.name): r.specifier for r in map(Requirement, (p for p in pip if p != "-e ."))}
    assert not set(conda) & set(from_pip), "a package from both conda and pip"
    got = {**conda, **from_pip}
    assert got.pop("python") == SpecifierSet(project["requires-python"])
    assert got.pop("pip") == SpecifierSet()
    assert got == wanted


def test_makefile_installs_a_pinned_torch_first():
    makefile = (ROOT / "Makefile").read_text()
    cpu_pin = re.search(r"^TORCH_CPU\s*:=\s*torch==(\S+)$", makefile, re.M).group(1)
    gpu_range = SpecifierSet(re.search(r"^TORCH_GPU\s*:=\s*torch(\S+)$", makefile, re.M).group(1))
    index = re.search(r"^TORCH_CPU_INDEX\s*:=\s*(\S+)$", makefile, re.M).group(1)
    assert cpu_pin == "2.13.0" and index == "https://download.pytorch.org/whl/cpu"
    # the CPU index cannot hang the set-up, and the same pin comes from the default index when it is unreachable
    cpu_lines = [line for line in makefile.splitlines() if '"$(TORCH_CPU)"' in line]
    assert len(cpu_lines) == 2
    assert all(flag in cpu_lines[0] for flag in ("--index-url $(TORCH_CPU_INDEX)", "--timeout", "--retries 0"))
    assert "--index-url" not in cpu_lines[1]
    assert makefile.index('"$(TORCH_GPU)"') < makefile.index('-e ".[test]"')
    assert makefile.index('"$(TORCH_CPU)"') < makefile.index('-e ".[test]"')
    # the GPU range holds the CPU pin, and pyproject's torch admits both, so installing the kit changes no torch
    torch = next(Requirement(r) for r in _pyproject()["project"]["dependencies"] if r.startswith("torch"))
    assert any(s.operator in ("<", "<=", "==", "~=") for s in gpu_range), "the GPU torch needs an upper bound"
    assert Version(cpu_pin) in gpu_range and Version(cpu_pin) in torch.specifier
    assert all(Version(s.version) in torch.specifier for s in gpu_range if s.operator == ">=")
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme and "torch==2.13.0" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_build_backend_packages_every_subpackage_and_the_shipped_results():
    from setuptools import find_packages

    config = _pyproject()
    assert "setuptools>=77" in config["build-system"]["requires"]  # `license = "MIT"` (SPDX) needs 77
    assert isinstance(config["project"]["license"], str)
    tool = config["tool"]["setuptools"]
    found = set(find_packages(where=str(ROOT), **tool["packages"]["find"]))
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cot_lab").rglob("__init__.py")}
    assert found == packages
    shipped = [p.relative_to(ROOT / "cot_lab").as_posix() for p in (ROOT / "cot_lab" / "precomputed").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert shipped
    patterns = tool["package-data"]["cot_lab"]
    assert [f for f in shipped if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []


def test_console_script_is_declared():
    assert _pyproject()["project"]["scripts"]["cot-lab"] == "cot_lab.cli:main"
