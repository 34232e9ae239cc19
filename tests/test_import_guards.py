"""No Ray below ``tune/``: the trainer, its pieces and study validation import without Ray.

The cases run in one fresh interpreter (the test session itself may have imported Ray), in
order, checking ``sys.modules`` after each, so the first case that pulls Ray in is the one named
(one interpreter instead of one per case: the torch import is paid once). A package case also
imports every submodule (``pkgutil.walk_packages``), so a Ray import hidden in a module the
package does not import itself is caught too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (module, import all its submodules too, extra code run after the import)
CASES = [
    ("fer_core.engine", True, ""),
    ("fer_core.engine.loop", False, ""),
    ("fer_core.engine.build", False, "m.compose([])"),
    ("fer_core.methods", True, "assert m.list_methods()"),
    ("fer_core.losses", True, ""),
    ("fer_core.models", True, ""),
    ("fer_core.data", True, "assert m.list_datasets()"),
    ("fer_core.study", True, "m.load_study(ROOT / 'studies/quickstart.yaml')"),
    # the Ray-free part of tune/ that the study schema and the trainer's callers read
    ("fer_core.tune.searchers", True, "assert m.list_searchers()"),
    ("fer_core.tune.spec", False, ""),
    ("fer_core.tune.storage", False, ""),
]

CODE = """
import importlib, pkgutil, sys
from pathlib import Path
ROOT = Path({root!r})
for name, walk, extra in {cases!r}:
    m = importlib.import_module(name)
    if walk and hasattr(m, "__path__"):
        for info in pkgutil.walk_packages(m.__path__, m.__name__ + "."):
            importlib.import_module(info.name)
    exec(extra)
    bad = sorted(k for k in sys.modules if k.split(".")[0] == "ray")
    assert not bad, name + " imports Ray: " + ", ".join(bad[:5])
"""


def test_trainer_study_and_tune_helpers_import_without_ray():
    code = CODE.format(root=str(ROOT), cases=CASES)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_guard_names_a_module_that_imports_ray():
    code = CODE.format(root=str(ROOT), cases=[("json", False, "import ray")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "json imports Ray: ray" in proc.stderr
