"""Load space/app.py (a script, not a package module) and serve it on 127.0.0.1 for the Space tests."""

import contextlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_PATH = ROOT / "space" / "app.py"
EXAMPLES = ROOT / "space" / "examples"
LOL = ROOT / "datasets" / "lol_eval15"  # fixed test images (the examples follow the shipped model)


def load_space_app():
    """The space/app.py module, imported once per test session."""
    name = "mirnet_space_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@contextlib.contextmanager
def served(checkpoints, concurrency: int = 2, max_file_size="2mb", **build_kwargs):
    """build_demo(checkpoints) queued and launched on 127.0.0.1 in this process; closed on exit."""
    app = load_space_app()
    demo = app.build_demo(checkpoints, device="cpu", **build_kwargs)
    app.launch(demo, concurrency=concurrency, queue_size=16, max_file_size=max_file_size,
               server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield app, demo
    finally:
        demo.close()
