"""Helpers shared by the tests (fixtures live in conftest.py): tiny configs, random images, loading a script of the
repository as a module, and running code in a process where this package cannot be imported."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import PIL.Image

from modeling_mirnet import MIRNetConfig

REPO = Path(__file__).resolve().parent.parent
TINY = dict(num_features=8, num_rrg=1, num_mrb=1, num_streams=3, num_dau_columns=2)


def load_script(path, name: str | None = None):
    """A script of the repository (train/train.py, space/app.py, ...) as a module, imported once: its functions
    without running it. `path` is relative to the repository root."""
    path = REPO / path
    name = name or f"script_{path.parent.name}_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def tiny_config(**overrides) -> MIRNetConfig:
    return MIRNetConfig(**{**TINY, **overrides})


def random_image(height: int, width: int, seed: int = 0, mode: str = "RGB") -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


# Prepended to scripts run by `run_without_package`: hides modeling_mirnet however it is installed (editable finder,
# a path entry, site-packages) and nothing else, so torch and transformers still come from this environment even
# when the virtualenv lives inside the clone.
HIDE_PACKAGE = """\
import importlib.abc, sys


class HidePackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "modeling_mirnet":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, HidePackage())
try:
    import modeling_mirnet  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("modeling_mirnet is still importable: this process would not show what a user without it gets")
"""


def run_without_package(script: str, *args, cwd) -> subprocess.CompletedProcess:
    """Run `script` (with `args` as sys.argv[1:]) in a fresh interpreter of this environment, isolated (-I: no
    current folder, PYTHONPATH or user site on the path) and with `modeling_mirnet` hidden: what a user of a saved
    folder or Hub repo gets without this package. The Hugging Face variables (offline, HF_HOME) are inherited."""
    path = Path(cwd) / "without_package.py"
    path.write_text(HIDE_PACKAGE + textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, "-I", str(path), *map(str, args)], cwd=cwd, env=dict(os.environ),
        capture_output=True, text=True, timeout=300,
    )
