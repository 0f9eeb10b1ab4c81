"""Helpers shared by the tests (fixtures live in conftest.py): tiny configs, random images, loading a script of the
repository as a module, and running code in a process where this package cannot be imported."""

import importlib.util
import os
import subprocess
import sys
import textwrap
import zlib
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


def write_png16(path, array: np.ndarray) -> Path:
    """A 16-bit PNG (gray for HxW, RGB for HxWx3 uint16), written by hand: PIL cannot write 16-bit RGB."""
    height, width = array.shape[:2]
    color_type = 0 if array.ndim == 2 else 2
    rows = array.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, color_type, 0, 0, 0])
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))
    return Path(path)


def photos_of_every_kind(folder, height: int = 36, width: int = 52) -> dict[str, Path]:
    """Dark photos in the forms cameras, scanners and editors write, each of which the package must decode one way
    (name -> file): 16-bit gray and RGB PNG (values all above 255: clipped to 8 bits they would be white), 32-bit
    integer ("I") and float ("F") TIFF, gray with alpha, palette with a transparent colour, CMYK JPEG, a JPEG stored
    sideways with EXIF orientation 6, and plain 8-bit RGB."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x / width + y / height) / 2  # 0..1
    rgb = (np.stack([ramp, ramp[::-1], ramp[:, ::-1]], -1) * 60 + 5).astype(np.uint8)  # a dark 8-bit photo
    files = {"gray16.png": write_png16(folder / "gray16.png", (2000 + ramp * 10000).astype(np.uint16)),
             "rgb16.png": write_png16(folder / "rgb16.png", (rgb.astype(np.uint16) * 257))}
    images = {
        "int32.tif": PIL.Image.fromarray((1000 + ramp * 14000).astype(np.int32)),
        "float.tif": PIL.Image.fromarray((ramp * 0.25).astype(np.float32)),
        "gray-alpha.png": PIL.Image.fromarray(np.stack([rgb[..., 0], np.full_like(rgb[..., 0], 128)], -1), "LA"),
        "cmyk.jpg": PIL.Image.fromarray(rgb).convert("CMYK"),
        "rgb.png": PIL.Image.fromarray(rgb),
    }
    for name, image in images.items():
        image.save(folder / name)
        files[name] = folder / name
    PIL.Image.fromarray(rgb).quantize(16).save(folder / "palette.png", transparency=0)
    files["palette.png"] = folder / "palette.png"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    PIL.Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif.tobytes())
    files["rotated.jpg"] = folder / "rotated.jpg"
    return files


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
