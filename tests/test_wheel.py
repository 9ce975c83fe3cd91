"""The built distribution works without the checkout: what `pip install cot-lab` from a wheel would give a student.

Builds the sdist and, from it, the wheel (`python -m build --no-isolation`, so no network), installs the wheel
into a fresh venv outside the checkout, and imports the kit there with the working directory outside the
checkout too. The fresh venv borrows the third-party packages (torch, numpy, ...) of the environment running
the tests through a plain path line in a .pth file: such a line puts that site-packages on sys.path without
running the .pth files inside it, so the editable install's finder (`__editable__.cot_lab-*.pth`, which maps
`cot_lab` to the checkout) stays inactive, and the venv's own site-packages comes first on sys.path.
"""
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "cot_lab" / "precomputed").glob("*/*.json"))


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _clean_env(**extra) -> dict:
    """This environment without anything that would point Python or the kit back at the checkout or the network."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "COT_LAB_DATA", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT, env=_clean_env())
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return sdist, wheel


def test_sdist_and_wheel_carry_every_subpackage_and_the_shipped_results(dists):
    sdist, wheel = dists
    assert SHIPPED, "no shipped result sets under cot_lab/precomputed/"
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "cot_lab").rglob("__init__.py"))
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    for name in SHIPPED:
        assert name in in_sdist, f"{name} is missing from {sdist.name}"
        assert name in in_wheel, f"{name} is missing from {wheel.name}"
    for package in packages:
        assert f"{package}/__init__.py" in in_wheel, f"package {package} is missing from {wheel.name}"


def test_wheel_installed_outside_the_checkout_loads_the_shipped_results(dists, tmp_path):
    _, wheel = dists
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # pip from this environment installs into the new venv (pip >= 22.3); nothing is borrowed yet, so pip
    # sees no cot-lab already installed and touches nothing outside the venv
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel],
         cwd=tmp_path, env=_clean_env())
    venv_site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                     .stdout.strip())
    borrowed = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))  # this env's deps, in order
    (venv_site / "_cot_lab_test_deps.pth").write_text("".join(f"{p}\n" for p in borrowed))

    expected = len(json.loads((ROOT / "cot_lab" / "precomputed" / "laptop" / "runs.json").read_text()))
    probe = ("import json, sys, cot_lab, cot_lab.core.results as r; d = r.load_results('laptop'); "
             "print(json.dumps(dict(file=cot_lab.__file__, data=str(r.data_root()), runs=len(d['runs']), "
             "editable=[m for m in sys.modules if m.startswith('__editable__')])))")
    got = json.loads(_run([python, "-c", probe], cwd=tmp_path, env=_clean_env()).stdout.strip().splitlines()[-1])

    assert Path(got["file"]).is_relative_to(venv_site), f"cot_lab imported from {got['file']}, not the wheel"
    assert not Path(got["file"]).is_relative_to(ROOT)
    assert Path(got["data"]).is_relative_to(venv_site), got["data"]
    assert not got["editable"], got["editable"]
    assert got["runs"] == expected > 0  # all the shipped runs (20 in the laptop set today)
    # the console script came with the wheel
    assert (venv / "bin" / "cot-lab").is_file() or (venv / "Scripts" / "cot-lab.exe").is_file()
