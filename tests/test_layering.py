"""The package's layering, checked on its source and on a fresh interpreter:

- the core (retina, coding, layers, competition, learning, learners, training, neurons, svm,
  metrics and their compiled backends) imports no models, data, files, plotting, analysis or
  command line, not even inside a function;
- the models import no plotting, widgets, analysis or command line;
- importing the core or a model loads neither matplotlib nor ipywidgets;
- no module imports another that imports it back (no import cycle, function-level imports
  included).
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "snnlab"
CORE = {"retina", "coding", "layers", "competition", "learning", "learners", "training", "neurons", "svm", "metrics",
        "_batching", "_checks", "_numba", "_coding_kernels", "_stdp_kernels", "_decision_kernels"}
NOT_IN_CORE = {"models", "data", "io", "runs", "integrity", "pretrained", "analysis", "viz", "widgets", "cli"}
NOT_IN_MODELS = {"analysis", "viz", "widgets", "cli"}
PLOTTING = ("matplotlib", "ipywidgets", "ipycanvas")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set:
    """The snnlab modules (dotted, without 'snnlab.') and third-party roots a file imports anywhere."""
    name = _module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".") if name else []
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name[len("snnlab."):] if alias.name.startswith("snnlab.") else "!" + alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                mod = ".".join([*base, *([node.module] if node.module else [])])
                # "from . import x" / "from .. import x": x may be a module
                targets = [mod] if node.module else [".".join([*base, a.name]) for a in node.names]
                out.update(t for t in targets if t)
            elif node.module and node.module.startswith("snnlab"):
                out.add(node.module[len("snnlab."):] if node.module != "snnlab" else "")
            elif node.module:
                out.add("!" + node.module)
    return out


MODULES = {_module_name(p): _imports(p) for p in sorted(PKG.rglob("*.py"))}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n in CORE))
def test_core_imports_nothing_above_it(name):
    bad = {m for m in MODULES[name] if m.split(".")[0] in NOT_IN_CORE}
    bad |= {m for m in MODULES[name] if m.startswith("!") and m[1:].split(".")[0] in PLOTTING}
    assert not bad, f"snnlab.{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("models")))
def test_models_import_no_plotting_or_command_line(name):
    bad = {m for m in MODULES[name] if m.split(".")[0] in NOT_IN_MODELS}
    bad |= {m for m in MODULES[name] if m.startswith("!") and m[1:].split(".")[0] in PLOTTING}
    assert not bad, f"snnlab.{name} imports {sorted(bad)}"


def test_no_import_cycles():
    graph = {n: {m for m in deps if not m.startswith("!") and m in MODULES and m != n} for n, deps in MODULES.items()}
    # the package's own __init__ only re-exports names lazily (PEP 562), so it is no edge
    graph.pop("", None)
    for deps in graph.values():
        deps.discard("")
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                cycle = stack[stack.index(m):] + [m]
                pytest.fail("import cycle: " + " -> ".join(f"snnlab.{c}" for c in cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_importing_the_core_and_a_model_loads_no_plotting():
    code = ("import sys; import snnlab.learners, snnlab.training, snnlab.svm, snnlab.models.mozafari2019, "
            "snnlab.models.kheradpisheh2018; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PLOTTING!r} or m in "
            "('snnlab.viz', 'snnlab.widgets', 'snnlab.analysis', 'snnlab.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_layering_check_sees_function_level_imports(tmp_path):
    f = tmp_path / "probe.py"
    f.write_text("def f():\n    from .viz import show_maps\n    import matplotlib.pyplot\n")
    global PKG
    old, PKG = PKG, tmp_path
    try:
        assert {"viz", "!matplotlib.pyplot"} <= _imports(f)
    finally:
        PKG = old
