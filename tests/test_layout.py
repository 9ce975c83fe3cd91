"""The package layout's rules, read from the source (AST), not from a running import.

core/ and data/ import no topic and no ui/; inside a topic only panel.py and plots.py import ipywidgets
or matplotlib; topics import each other only where the course builds on an earlier notebook; nothing
imports another module's _private names; no module is over 400 lines; `import cot_lab` pulls in
neither ipywidgets, matplotlib nor transformers.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cot_lab"
TOPICS = ("start", "budgets", "scaling", "compress", "inference", "hparams", "moe", "evaluation", "deploy", "security")
# A topic may import another only where the course builds on an earlier notebook.
TOPIC_DEPENDS = {"inference": {"scaling", "budgets"}, "hparams": {"scaling"}, "moe": {"scaling", "inference"},
                 "evaluation": set(), "deploy": {"evaluation"}, "security": {"evaluation", "deploy"}}
UI_LIBRARIES = ("ipywidgets", "matplotlib")
MAX_LINES = 400


def modules(package: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = path.with_suffix("").parts
    parts = parts[len(parts) - 1 - parts[::-1].index("cot_lab"):]  # from the last "cot_lab" folder down
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            out.append((module, [a.name for a in node.names], node.lineno))
    return out


def area(module: str) -> str | None:
    """'core', 'data', 'ui', a topic name, or None (top level / outside cot_lab) of a dotted module name."""
    parts = module.split(".")
    return parts[1] if parts[0] == "cot_lab" and len(parts) > 1 and parts[1] in ("core", "data", "ui", *TOPICS) else None


def test_the_layout_has_its_parts():
    for part in ("core", "data", "ui", "start", "budgets", "scaling", "compress"):
        assert (PACKAGE / part / "__init__.py").is_file(), part
    for topic in ("start", "budgets", "scaling", "compress"):
        for module in ("panel.py", "checks.py"):
            assert (PACKAGE / topic / module).is_file(), f"{topic}/{module}"
    for topic in ("budgets", "scaling", "compress"):  # start's one figure is the kit's loss curve, in ui/figures
        assert (PACKAGE / topic / "plots.py").is_file(), f"{topic}/plots.py"
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "cli.py", "lab.py"], f"top-level modules beyond the entry points: {flat}"


def core_violations(paths) -> list[str]:
    bad = []
    for path in paths:
        if area(dotted(path)) not in ("core", "data"):
            continue
        for module, _, line in imports(path):
            if area(module) in (*TOPICS, "ui") or module.split(".")[0] in UI_LIBRARIES:
                bad.append(f"{dotted(path)}:{line} imports {module}")
    return bad


def ui_library_violations(paths) -> list[str]:
    bad = []
    for path in paths:
        where = area(dotted(path))
        allowed = where == "ui" or (where in TOPICS and path.name in ("panel.py", "plots.py"))
        for module, _, line in imports(path):
            if module.split(".")[0] in UI_LIBRARIES and not allowed:
                bad.append(f"{dotted(path)}:{line} imports {module}")
    return bad


def topic_violations(paths) -> list[str]:
    bad = []
    for path in paths:
        where = area(dotted(path))
        if where not in TOPICS:
            continue
        for module, _, line in imports(path):
            other = area(module)
            if other in TOPICS and other != where and other not in TOPIC_DEPENDS.get(where, ()):
                bad.append(f"{dotted(path)}:{line} imports {module}")
    return bad


def private_violations(paths) -> list[str]:
    bad = []
    for path in paths:
        for module, names, line in imports(path):
            if module.startswith("cot_lab") and module != dotted(path):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                bad += [f"{dotted(path)}:{line} imports {module}.{n}" for n in private]
    return bad


def test_core_and_data_import_no_topic_and_no_ui():
    assert not core_violations(modules())


def test_only_panels_and_plots_import_widget_and_plot_libraries():
    assert not ui_library_violations(modules())


def test_topics_import_each_other_only_where_the_course_builds_on_an_earlier_notebook():
    assert not topic_violations(modules())


def test_no_module_imports_another_modules_private_names():
    assert not private_violations(modules())


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these (one idea per module): {long}"


def test_the_rules_catch_violations(tmp_path):
    """The rules can fail: a fake package breaking each one is caught, line by line."""
    for folder in ("core", "budgets", "scaling"):
        (tmp_path / "cot_lab" / folder).mkdir(parents=True)
    (tmp_path / "cot_lab" / "core" / "probe.py").write_text(
        "import ipywidgets\nfrom cot_lab.scaling.fit import _GRID\nfrom ..ui import panel\n")
    (tmp_path / "cot_lab" / "budgets" / "readout.py").write_text("import matplotlib.pyplot as plt\nfrom cot_lab.scaling import fit\n")
    (tmp_path / "cot_lab" / "scaling" / "plots.py").write_text("import matplotlib\nfrom cot_lab.budgets import gpus\n")
    fake = modules(tmp_path / "cot_lab")
    assert core_violations(fake) == ["cot_lab.core.probe:1 imports ipywidgets", "cot_lab.core.probe:2 imports cot_lab.scaling.fit",
                                     "cot_lab.core.probe:3 imports cot_lab.ui"]
    assert ui_library_violations(fake) == ["cot_lab.budgets.readout:1 imports matplotlib.pyplot",
                                           "cot_lab.core.probe:1 imports ipywidgets"]
    assert topic_violations(fake) == ["cot_lab.budgets.readout:2 imports cot_lab.scaling",
                                      "cot_lab.scaling.plots:2 imports cot_lab.budgets"]
    assert private_violations(fake) == ["cot_lab.core.probe:2 imports cot_lab.scaling.fit._GRID"]


def test_import_cot_lab_loads_no_widget_plot_or_model_library():
    code = ("import sys, json, cot_lab; "
            "print(json.dumps([m for m in ('ipywidgets', 'matplotlib', 'transformers') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_public_name_imports_from_cot_lab():
    import cot_lab

    missing = [name for name in cot_lab.__all__ if not hasattr(cot_lab, name)]
    assert not missing and len(set(cot_lab.__all__)) == len(cot_lab.__all__)
    for name in ("train", "load_model", "save_model", "RunStore", "Budget", "fit_sweep", "prune", "setup_notebook"):
        assert name in cot_lab.__all__, name


def test_the_function_train_does_not_hide_a_module():
    import importlib

    import cot_lab

    assert callable(cot_lab.train)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("cot_lab.train")
