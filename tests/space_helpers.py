"""Load space/app.py (a script, not a package module) and serve it on 127.0.0.1 for the Space tests."""

import contextlib

from helpers import REPO as ROOT
from helpers import load_script

EXAMPLES = ROOT / "space" / "examples"
LOL = ROOT / "datasets" / "lol_eval15"  # fixed test images (the examples follow the shipped model)


def load_space_app():
    """The space/app.py module, imported once per test session."""
    return load_script("space/app.py", "mirnet_space_app")


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
