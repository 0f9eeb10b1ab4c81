"""MIRNet low-light enhancement against PIL autocontrast: a Gradio app and a Hugging Face Space.

    python space/app.py                                   # bundled checkpoints under space/checkpoints/<name>/
    python space/app.py --model LoL=org/mirnet-lol --model SICE=path/to/mirnet-sice
    MIRNET_MODEL=org/mirnet-lol,org/mirnet-sice python space/app.py

Each checkpoint is a local folder or a Hub id (offline: Hub ids already in the cache, with HF_HUB_OFFLINE=1),
optionally labelled `LABEL=SOURCE`. Without a label, a name containing "lol" / "sice" is labelled "LoL" / "SICE",
anything else by its folder or repo name. With no checkpoint the app still runs the autocontrast baseline and says
how to get one; it never shows an untrained network's output as a result.

Runs on the GPU when one is present (ZeroGPU too, through `spaces.GPU`, a no-op elsewhere), otherwise on the CPU,
in the precision --precision picks (auto: bf16 autocast on a GPU or a CPU with native bf16, else fp32); the page says
which. Large photos are enhanced in overlapping tiles. Requests go through a bounded queue. Loading, tiling,
precision and the out-of-memory message are the package's (`modeling_mirnet.inference`), as in `mirnet-enhance`,
and so is the decoding of every upload (`to_float_rgb`: the model gets the pixels the CLI gives it for that file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls from a demo that must run offline

HERE = Path(__file__).resolve().parent
# modeling_mirnet comes from the installed package (pip install -e ".[space]"), or, deployed as a Space, from the
# copy beside app.py (see README.md): the script's folder is on sys.path.
try:
    import modeling_mirnet  # noqa: F401
except ModuleNotFoundError as err:
    if err.name != "modeling_mirnet":
        raise
    raise SystemExit(
        "space/app.py needs the modeling_mirnet package: run `pip install -e \".[space]\"` in the repository "
        "(deployed as a Space: copy modeling_mirnet/ beside app.py, see space/README.md)"
    ) from None

try:  # ZeroGPU: spaces.GPU attaches a GPU for the duration of the call; outside ZeroGPU it returns the function as is
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:

    def gpu(fn):
        return fn


import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402

from modeling_mirnet.image_processing_mirnet import ImageLoadError, load_image, to_float_rgb, to_uint8  # noqa: E402
from modeling_mirnet.inference import (  # noqa: E402
    DEFAULT_TILE_OVERLAP,
    MAX_TILE_SIZE,
    MIN_TILE_SIZE,
    PRECISIONS,
    TILE_SIZE_STEP,
    DeviceError,
    Enhancer,
    ModelLoadError,
    OutOfMemory,
    count_tiles,
    describe_device,
    load_mirnet,
    looks_like_local_path,
    pick_device,
    resolve_dtype,
)
from modeling_mirnet.exposure import MAX_BRIGHTNESS_STOPS, MAX_EXPOSURE_STOPS, check_controls, check_exposure  # noqa: E402
from modeling_mirnet.memory import keep_freed_memory  # noqa: E402
from modeling_mirnet.tiling import check_tile_settings  # noqa: E402
from modeling_mirnet.metrics import autocontrast, psnr, ssim, well_exposed_note  # noqa: E402
from modeling_mirnet.model_specs import parse_model_specs  # noqa: E402

CHECKPOINT_DIR = HERE / "checkpoints"
EXAMPLE_DIR = HERE / "examples"
TILE_PIXELS = 1_500_000  # "auto" tiling above this many pixels
DEFAULT_TILE = 512
MAX_PIXELS = int(os.environ.get("MIRNET_MAX_PIXELS", "24000000"))  # larger images are refused with a message
MAX_FILE_SIZE = os.environ.get("MIRNET_MAX_FILE_SIZE", "25mb")
ON_ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
TILING_CHOICES = ["auto", "always", "never"]
MAX_PHOTOS = int(os.environ.get("MIRNET_MAX_PHOTOS", "16"))  # photos per request in the "Several photos" tab


def read_controls(brightness, strength, auto_exposure=True, exposure=0.0) -> tuple[float, float, float | None]:
    """The brightness (stops), strength and exposure controls' values (the exposure None when "auto"), or a gr.Error
    naming the one out of range."""
    try:
        brightness, strength = float(brightness), float(strength)
        check_controls(brightness, strength)
        exposure = None if auto_exposure else float(check_exposure(float(exposure), 1)[0])
    except (TypeError, ValueError) as err:
        raise gr.Error(str(err)) from None
    return brightness, strength, exposure


def safe_name(text: str) -> str:
    """`text` as a file-name part: anything but letters, digits, '_', '.', '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


HOW_TO_GET_A_CHECKPOINT = """\
**No trained MIRNet checkpoint was found**, so only the PIL autocontrast baseline is shown; the MIRNet panel stays
empty rather than showing an untrained network. To get one:
- restore the project's bundled `space/checkpoints/mirnet-lol/` (it ships with the repository), or convert the
  authors' weights (`model_lol.pth` from github.com/swz30/MIRNet): `mirnet-convert model_lol.pth space/checkpoints/mirnet-lol`;
- or train one with `train/train.py` (on a CPU too: see `docs/training-mirnet-lol.md`) and package it with
  `train/package_model.py --output space/checkpoints/<name>`;
- or point the app at a model folder or Hub id: `python space/app.py --model LoL=org/mirnet-lol`
  (or `MIRNET_MODEL=...`). Checkpoints in `space/checkpoints/<name>/` are picked up on start."""


# ----------------------------------------------------------------------------------------------- checkpoints


def bundled_checkpoints(folder: Path = CHECKPOINT_DIR) -> dict[str, str]:
    """Saved model folders under space/checkpoints/<name>/ (each with a config.json), LoL first."""
    if not folder.is_dir():
        return {}
    found = sorted(p for p in folder.iterdir() if (p / "config.json").is_file())
    found.sort(key=lambda p: ("lol" not in p.name.lower(), p.name))
    return parse_model_specs([str(p) for p in found])


def default_checkpoints(specs: list[str] | None = None) -> dict[str, str]:
    """--model flags, else $MIRNET_MODEL, else the bundled folders (ValueError for a malformed or repeated label)."""
    specs = specs or ([os.environ["MIRNET_MODEL"]] if os.environ.get("MIRNET_MODEL") else [])
    return parse_model_specs(specs) if specs else bundled_checkpoints()


# Loaded models by (source, device), shared by every app in the process (the GPU function looks them up by name,
# which keeps its arguments small and picklable for ZeroGPU).
_MODELS: dict[tuple[str, str], tuple] = {}
_MODELS_LOCK = threading.Lock()


def load_checkpoint(source: str, device: torch.device):
    with _MODELS_LOCK:
        key = (source, str(device))
        if key not in _MODELS:
            _MODELS[key] = load_mirnet(source, device=device)
        return _MODELS[key]


@gpu
def run_mirnet(source: str, device: str, precision: str, pixel_values: torch.Tensor, tile_size: int | None, on_tile=None,
               brightness: float = 0.0, strength: float = 1.0, exposure: float | None = None):
    """The network's output for `pixel_values` (the package's Enhancer.forward, with the brightness, strength and,
    for exposure-conditioned models, exposure controls), returned on the CPU.

    `on_tile(done, total)` reports this call's tiles only (OutOfMemory carries the suggested tile size)."""
    enhancer = Enhancer(*_MODELS[(source, device)], precision=precision)
    return enhancer.forward(pixel_values, tile_size, DEFAULT_TILE_OVERLAP, on_tile, brightness, strength, exposure=exposure).cpu()


def shown_source(source: str) -> str:
    """How a checkpoint is named on the page: a Hub id as it is, a local folder by its name (never a machine's path)."""
    return Path(source).name if looks_like_local_path(source) else source


# ----------------------------------------------------------------------------------------------- uploads


def cannot_read(err: ImageLoadError, name: str) -> gr.Error:
    """The error for an upload that is not a usable image: its name once, then the package's diagnosis.

    The words lead the message because gradio 6.31's page titles every error toast "Error", whatever gr.Error's
    `title` says (its front end reads a field the server never sends)."""
    return gr.Error(f"Cannot read {name}: {err.problem}")


def guard_upload(component: gr.Image, what: str) -> gr.Image:
    """Make a gr.Image (type="filepath") answer an upload PIL cannot open with a readable gr.Error, not a crash.

    gr.Image opens every upload with PIL before the event runs, so a text file renamed .png would fail there with
    an opaque error. The wrapper turns that into the package's diagnosis (not an image / truncated / empty / too
    large), with the uploaded file's name. (A gr.Image subclass would do the same, but gradio writes a .pyi stub
    next to the file that defines one.)
    """
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - anything PIL raises on a bad upload
            path = getattr(payload, "path", None)
            name = f'the {what} ({getattr(payload, "orig_name", None) or (Path(path).name if path else "upload")})'
            try:
                load_image(path, MAX_PIXELS)
            except ImageLoadError as diagnosed:
                raise cannot_read(diagnosed, name) from None
            except Exception:  # noqa: BLE001
                pass
            detail = str(err).replace(path, "the file") if path else str(err)  # no server path, the name said once
            raise gr.Error(f"Cannot read {name}: {type(err).__name__}: {detail}") from None

    component.preprocess = preprocess
    return component


def decode_upload(path: str) -> tuple[np.ndarray, PIL.Image.Image]:
    """An uploaded file decoded as `mirnet-enhance` decodes it (`to_float_rgb`, the package's one decoding: 16-bit,
    palette, CMYK, EXIF-rotated ...): the float RGB pixels the model receives, and their 8-bit RGB image (shown as the
    input, given to autocontrast and the metrics). ImageLoadError when it is not a usable image."""
    pixels = to_float_rgb(path, MAX_PIXELS)
    return pixels, PIL.Image.fromarray(to_uint8(torch.from_numpy(pixels)).numpy())


def open_upload(path: str, name: str) -> tuple[np.ndarray, PIL.Image.Image]:
    """`decode_upload`, or gr.Error naming the file as `name` when it is not a usable image."""
    try:
        return decode_upload(path)
    except ImageLoadError as err:
        raise cannot_read(err, name) from None


def compare_pair(gallery, index: int):
    """The (input, result) pair of the "Several photos" gallery that holds item `index` (inputs at even places,
    results after them), for the before/after slider; None for an empty gallery."""
    if not gallery:
        return None
    first = min(max(int(index), 0), len(gallery) - 1) // 2 * 2
    item = lambda i: gallery[i][0] if isinstance(gallery[i], (list, tuple)) else gallery[i]  # noqa: E731
    return item(first), item(first + 1)


def show_pair(gallery, selected: gr.SelectData):
    """Gallery click -> the slider shows that photo's input and result."""
    return compare_pair(gallery, selected.index)


# ----------------------------------------------------------------------------------------------- the app


class MIRNetSpace:
    """State and handlers of one app: the checkpoints it offers and where results are written."""

    def __init__(self, checkpoints: dict[str, str] | None, device: torch.device | str | None = None, tile_pixels: int = TILE_PIXELS,
                 precision: str = "auto"):
        self.device = pick_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the app's process serves photos: reuse freed activations (modeling_mirnet.memory)
        self.precision = precision
        self.dtype = resolve_dtype(precision, self.device)
        self.tile_pixels = tile_pixels
        self.sources: dict[str, str] = {}  # label -> source, only those that loaded
        self.problems: list[str] = []
        for label, source in (checkpoints or {}).items():
            try:
                load_checkpoint(source, self.device)
                self.sources[label] = source
            except ModelLoadError as err:
                self.problems.append(f"{label}: {err}")
            except Exception as err:  # noqa: BLE001 - a corrupt file must not take the app down
                self.problems.append(f"{label}: {source}: cannot load ({type(err).__name__}: {err})")
        self.work_dir = Path(tempfile.gettempdir()) / "mirnet-space"
        self.work_dir.mkdir(parents=True, exist_ok=True)

    @property
    def labels(self) -> list[str]:
        return list(self.sources)

    @property
    def conditioned(self) -> bool:
        """Whether any checkpoint renders the exposure it is asked for (then the page shows the exposure controls)."""
        return any(self.enhancer(label).conditioned for label in self.labels)

    def enhancer(self, label: str) -> Enhancer:
        return Enhancer(*_MODELS[(self.sources[label], str(self.device))], precision=self.precision)

    def device_text(self) -> str:
        """Where and in which precision MIRNet runs, e.g. "CPU (2 threads), bf16 autocast"."""
        if ON_ZERO_GPU:
            return f"ZeroGPU, {'bf16 autocast' if self.dtype == torch.bfloat16 else 'fp32'}"
        return describe_device(self.device, self.dtype)

    def notice(self) -> str:
        """Markdown shown at the top: what runs where, or why MIRNet does not run."""
        lines = []
        if not self.sources:
            lines.append(HOW_TO_GET_A_CHECKPOINT)
        if self.problems:
            lines.append("**Checkpoints that could not be loaded:**\n" + "\n".join(f"- {p}" for p in self.problems))
        if self.sources:
            names = ", ".join(f"{label} (`{shown_source(source)}`)" for label, source in self.sources.items())
            lines.append(f"Checkpoints: {names}. Running on {self.device_text()}.")
        return "\n\n".join(lines)

    def _request_dir(self) -> Path:
        cutoff = time.time() - 3600  # results stay an hour; gradio copies what it serves into its own cache
        for old in self.work_dir.iterdir():
            try:
                if old.is_dir() and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        folder = self.work_dir / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def tile_size_for(self, width: int, height: int, tiling: str, tile_size: int) -> int | None:
        if tiling == "never":
            return None
        if tiling == "always" or width * height > self.tile_pixels:
            return int(tile_size)
        return None

    def enhance(self, image_path, reference_path=None, checkpoint=None, tiling="auto", tile_size=DEFAULT_TILE,
                brightness=0.0, strength=1.0, auto_exposure=True, exposure=0.0, progress=gr.Progress()):
        """Enhance one upload; returns (status, MIRNet slider, autocontrast slider, side by side, metrics, files, the
        exposure rendered). `auto_exposure`: the model's own; else `exposure` (stops over the input)."""
        if not image_path:
            raise gr.Error("Upload an image first (or pick an example).")
        brightness, strength, exposure = read_controls(brightness, strength, auto_exposure, exposure)
        if tiling not in TILING_CHOICES:
            raise gr.Error(f"tiling must be one of {', '.join(TILING_CHOICES)}, got {tiling!r}")
        tile_size = int(tile_size or DEFAULT_TILE)  # the slider keeps it within MIN_TILE_SIZE..MAX_TILE_SIZE
        progress(0.0, desc="Reading the image")
        pixels, image = open_upload(image_path, f"the input ({Path(image_path).name})")
        reference = open_upload(reference_path, f"the reference ({Path(reference_path).name})")[1] if reference_path else None
        stem = Path(image_path).stem[:60] or "image"
        out = self._request_dir()
        input_png = out / f"{stem}_input.png"
        image.save(input_png, compress_level=1)

        progress(0.05, desc="Autocontrast")
        baseline = autocontrast(image)
        baseline_png = out / f"{stem}_autocontrast.png"
        baseline.save(baseline_png)

        enhanced_png, label, status, rendered = None, None, [], gr.skip()
        if self.sources:
            label = checkpoint if checkpoint in self.sources else self.labels[0]

            def on_tile(done, total):  # this request's tiles only
                progress(0.1 + 0.85 * done / total, desc=f"MIRNet ({label}): tile {done}/{total}")

            progress(0.1, desc=f"MIRNet ({label}) on {self.device_text()}")
            enhanced, report, stops = self.run_model(pixels, label, tiling, tile_size, brightness, strength, on_tile, exposure)
            rendered = gr.skip() if stops is None else round(stops, 2)
            progress(0.96, desc="Saving the result")
            enhanced_png = out / f"{stem}_mirnet-{safe_name(label)}.png"
            enhanced.save(enhanced_png)
            status.append(report)
        else:
            status.append("No trained MIRNet checkpoint: only the autocontrast baseline was computed.")
        note = well_exposed_note(pixels)
        if note:
            status.append(f"This photo is {note}.")
        metrics = self.metrics_table(image, reference, enhanced_png, baseline, label)
        gallery = [(str(input_png), "Input")]
        if enhanced_png:
            gallery.append((str(enhanced_png), f"MIRNet ({label})"))
        gallery.append((str(baseline_png), "PIL autocontrast"))
        files = [str(p) for p in (enhanced_png, baseline_png) if p]
        progress(1.0, desc="Done")
        return (
            " ".join(status),
            (str(input_png), str(enhanced_png)) if enhanced_png else None,
            (str(input_png), str(baseline_png)),
            gallery,
            metrics,
            files,
            rendered,
        )

    def rerun(self, image_path, reference_path=None, checkpoint=None, tiling="auto", tile_size=DEFAULT_TILE, brightness=0.0,
              strength=1.0, auto_exposure=True, exposure=0.0, progress=gr.Progress()):
        """A released slider: the same photo again with the new controls; nothing before a photo is uploaded."""
        if not image_path:
            return (gr.skip(),) * 7
        return self.enhance(image_path, reference_path, checkpoint, tiling, tile_size, brightness, strength, auto_exposure,
                            exposure, progress=progress)

    def rerun_at_exposure(self, image_path, reference_path=None, checkpoint=None, tiling="auto", tile_size=DEFAULT_TILE,
                          brightness=0.0, strength=1.0, auto_exposure=True, exposure=0.0, progress=gr.Progress()):
        """The exposure slider released: the photo rendered at that exposure, and "auto" unticked."""
        results = self.rerun(image_path, reference_path, checkpoint, tiling, tile_size, brightness, strength, False, exposure,
                             progress=progress)
        return (*results, False if image_path else gr.skip())

    def run_model(self, pixels: np.ndarray, label: str, tiling: str, tile_size: int, brightness: float, strength: float,
                  on_tile=None, exposure: float | None = None) -> tuple[PIL.Image.Image, str, float | None]:
        """MIRNet (checkpoint `label`) on one decoded photo (`open_upload`'s pixels), tiled as `tiling` says: the
        enhanced image, a status sentence (size, device, time, tiles, controls) and, for exposure-conditioned
        models, the exposure they rendered before `brightness` (`exposure`, or their prediction when None). Out of
        memory becomes a gr.Error with a tile size to try."""
        enhancer = self.enhancer(label)
        if exposure is not None and not enhancer.conditioned:
            raise gr.Error(f"Checkpoint {label} renders its own exposure (it was trained without exposure "
                           "conditioning): tick 'Auto exposure' and use Brightness instead.")
        inputs = enhancer.preprocess(pixels)
        stops = None
        if enhancer.conditioned:  # the head runs once here, so the status can say what it chose
            stops = float(enhancer.exposure(inputs["pixel_values"], exposure)[0])
        height, width = inputs["pixel_values"].shape[-2:]
        image_height, image_width = pixels.shape[:2]
        tile = self.tile_size_for(image_width, image_height, tiling, tile_size)
        if tile is not None:
            try:
                check_tile_settings(tile, DEFAULT_TILE_OVERLAP, enhancer.model.config.size_divisor)
            except ValueError as err:
                raise gr.Error(str(err)) from None
        tiles = count_tiles(height, width, tile)
        start = time.perf_counter()
        try:
            output = run_mirnet(self.sources[label], str(self.device), self.precision, inputs["pixel_values"], tile,
                                None if (ON_ZERO_GPU or tiles == 1 or on_tile is None) else on_tile, brightness, strength,
                                stops)
        except OutOfMemory as err:
            advice = f" (Tiling: 'always', tile size {err.suggested_tile})" if err.suggested_tile else ""
            message = str(err)
            raise gr.Error(f"{message[:1].upper()}{message[1:]}{advice}.") from None  # the message starts "Out of memory"
        seconds = time.perf_counter() - start
        how = f"{tiles} tiles of {tile} px" if tiles > 1 else "whole image"
        controls = "".join([
            "" if stops is None else f", exposure {stops:+.2f} stops ({'predicted' if exposure is None else 'set'})",
            f", brightness {brightness:+g} stops" if brightness else "", f", strength {strength:g}" if strength != 1 else ""])
        report = f"MIRNet ({label}) enhanced {image_width}x{image_height} on {self.device_text()} in {seconds:.1f} s ({how}{controls})."
        return enhancer.postprocess(output, inputs["original_sizes"])[0], report, stops

    def enhance_many(self, paths, checkpoint=None, brightness=0.0, strength=1.0, auto_exposure=True, exposure=0.0,
                     progress=gr.Progress()):
        """Enhance several uploads (at most MAX_PHOTOS); returns (status, gallery, slider, zip).

        The gallery holds each result beside its input (input, MIRNet, input, MIRNet ...: one pair per row); the
        slider compares the first pair (a click on a gallery image shows its pair, `compare_pair`); the status says
        per photo what the one-photo tab says (size, time, the well-exposed note) or why it was not enhanced; the zip
        holds the results and notes.txt with the same per-photo lines. A photo that cannot be read or enhanced does
        not stop the others."""
        paths = [p for p in (paths or []) if p]
        if not paths:
            raise gr.Error("Upload one or more photos first.")
        if len(paths) > MAX_PHOTOS:
            raise gr.Error(f"{len(paths)} photos: at most {MAX_PHOTOS} at a time here (the queue is shared); "
                           "enhance a whole folder with `mirnet-enhance photos/ -o enhanced/`.")
        if not self.sources:
            raise gr.Error("No trained MIRNet checkpoint is loaded (see the notice at the top).")
        brightness, strength, exposure = read_controls(brightness, strength, auto_exposure, exposure)
        label = checkpoint if checkpoint in self.sources else self.labels[0]
        out, gallery, results, lines = self._request_dir(), [], [], []
        for i, path in enumerate(paths):
            name = Path(path).name
            progress(i / len(paths), desc=f"photo {i + 1}/{len(paths)}: {name}")
            try:
                pixels, image = decode_upload(path)
                enhanced, report, _ = self.run_model(pixels, label, "auto", DEFAULT_TILE, brightness, strength, None, exposure)
            except ImageLoadError as err:
                lines.append(f"{name}: not enhanced ({err.problem}).")
                continue
            except gr.Error as err:  # out of memory: the message says what to try
                lines.append(f"{name}: not enhanced. {err.message}")
                continue
            stem = f"{i + 1:03d}_{safe_name(Path(path).stem)[:60]}"
            source, target = out / f"{stem}_input.png", out / f"{stem}.png"
            image.save(source, compress_level=1)
            enhanced.save(target)
            note = well_exposed_note(pixels)
            lines.append(f"{name}: {report}" + (f" This photo is {note}." if note else ""))
            results.append(target)
            gallery += [(str(source), f"{name}: input"),
                        (str(target), f"{name}: MIRNet ({label})" + (", already well exposed" if note else ""))]
        progress(1.0, desc="Zipping the results")
        archive = None
        if results:
            archive = out / "mirnet_enhanced.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
                for png in results:
                    zipped.write(png, png.name)
                zipped.writestr("notes.txt", "\n".join(lines) + "\n")
        summary = f"MIRNet ({label}) enhanced {len(results)} of {len(paths)} photo(s) on {self.device_text()}."
        status = "\n".join([summary, "", *(f"- {line}" for line in lines)])
        return status, gallery, compare_pair(gallery, 0), str(archive) if archive else None

    @staticmethod
    def metrics_table(image, reference, enhanced_png, baseline, label) -> str:
        if reference is None:
            return "Add a reference (well-exposed) image of the same scene to get PSNR / SSIM."
        if reference.size != image.size:
            return (
                f"The reference is {reference.width}x{reference.height} but the input is {image.width}x{image.height}: "
                "PSNR / SSIM need the same size, so none are shown."
            )
        if min(image.size) < 11:
            return "PSNR / SSIM need images of at least 11x11 pixels."
        rows = [("Input (no enhancement)", image)]
        if enhanced_png:
            rows.append((f"MIRNet ({label})", PIL.Image.open(enhanced_png).convert("RGB")))
        rows.append(("PIL autocontrast", baseline))
        lines = ["| result | PSNR (dB) | SSIM |", "|---|---:|---:|"]
        for name, result in rows:
            lines.append(f"| {name} | {psnr(result, reference):.2f} | {ssim(result, reference):.4f} |")
        return "\n".join(lines) + "\n\nAgainst the reference; 8-bit RGB, data range 1, SSIM 11x11 Gaussian window."


def example_rows() -> list[list]:
    """[input, reference or None] per example, in the order space/examples/examples.json gives (written by
    scripts/pick_space_examples.py by the rule in space/README.md); without it, the *_low.png files by name."""
    manifest = EXAMPLE_DIR / "examples.json"
    if manifest.is_file():
        rows = json.loads(manifest.read_text())["examples"]
        return [[str(EXAMPLE_DIR / row["input"]), str(EXAMPLE_DIR / row["reference"]) if row.get("reference") else None]
                for row in rows if (EXAMPLE_DIR / row["input"]).is_file()]
    rows = []
    for low in sorted(EXAMPLE_DIR.glob("*_low.png")):
        high = low.with_name(low.name.replace("_low", "_high"))
        rows.append([str(low), str(high) if high.is_file() else None])
    return rows


EXAMPLES_LABEL = "Examples: a typical LOL photo (with its reference), a hard one, a well-lit one (see space/README.md)"


CSS = """
#notice {border: 2px solid #d97706; border-radius: 8px; padding: 4px 12px; background: #fffbeb;}
#notice.ok {border-color: #9ca3af; background: transparent;}
"""


def build_demo(checkpoints: dict[str, str] | None = None, device=None, tile_pixels: int = TILE_PIXELS,
               precision: str = "auto") -> gr.Blocks:
    """The Blocks app. `checkpoints` maps a label ("LoL") to a model folder or Hub id; None or {}: no MIRNet.
    `precision`: "auto", "fp32" or "bf16" (see `modeling_mirnet.inference.resolve_dtype`)."""
    space = MIRNetSpace(checkpoints, device=device, tile_pixels=tile_pixels, precision=precision)
    with gr.Blocks(title="MIRNet low-light enhancement", delete_cache=(3600, 3600)) as demo:
        demo.space = space  # for tests and scripts
        gr.Markdown(
            "# MIRNet low-light enhancement vs PIL autocontrast\n"
            "Upload a dark photo (or pick an example). Each result has a before/after slider against the input; "
            "add a reference image of the same scene for PSNR / SSIM. "
            "[MIRNet: Zamir et al., ECCV 2020](https://arxiv.org/abs/2003.06792)"
        )
        gr.Markdown(space.notice(), elem_id="notice", elem_classes=[] if not space.sources else ["ok"])
        with gr.Row(visible=bool(space.sources)):
            checkpoint_in = gr.Dropdown(
                choices=space.labels, value=space.labels[0] if space.labels else None, label="Checkpoint",
                interactive=len(space.labels) > 1, scale=1,
            )
            brightness_in = gr.Slider(-MAX_BRIGHTNESS_STOPS, MAX_BRIGHTNESS_STOPS, value=0.0, step=0.25, elem_id="brightness",
                                      label="Brightness (stops; 0 = the model's own exposure)", scale=2)
            strength_in = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength (1 = MIRNet, 0 = the input)",
                                    elem_id="strength", scale=2)
        # exposure-conditioned checkpoints render the exposure they are asked for; "auto" is the model's guess, which
        # the slider then shows, and moving the slider renders that exposure instead
        with gr.Row(visible=space.conditioned):
            auto_exposure_in = gr.Checkbox(value=True, label="Auto exposure (the model's guess)", elem_id="auto-exposure", scale=1)
            exposure_in = gr.Slider(-MAX_EXPOSURE_STOPS, MAX_EXPOSURE_STOPS, value=0.0, step=0.05, elem_id="exposure", scale=4,
                                    label="Exposure (stops over the input; 0 keeps its brightness)")
        with gr.Tab("One photo"):
            with gr.Row():
                with gr.Column(scale=1):
                    image_in = guard_upload(gr.Image(label="Low-light image", type="filepath", image_mode=None, sources=["upload", "clipboard"], elem_id="input-image", height=300), "input")
                    reference_in = guard_upload(gr.Image(label="Reference image (optional, same scene well exposed)", type="filepath", image_mode=None, sources=["upload", "clipboard"], elem_id="reference-image", height=200), "reference")
                    with gr.Accordion("Tiling (for large photos)", open=False):
                        tiling_in = gr.Radio(TILING_CHOICES, value="auto", label=f"Tiles ('auto': above {tile_pixels / 1e6:g} MP)")
                        tile_in = gr.Slider(MIN_TILE_SIZE, MAX_TILE_SIZE, value=DEFAULT_TILE, step=TILE_SIZE_STEP,
                                            label="Tile size (pixels)")
                    button = gr.Button("Enhance", variant="primary", elem_id="enhance-button")
                    status = gr.Markdown(elem_id="status")
                with gr.Column(scale=2):
                    with gr.Row():
                        mirnet_out = gr.ImageSlider(
                            label="Input | MIRNet" if space.sources else "MIRNet: no trained checkpoint (see the notice above)",
                            type="filepath", format="png", elem_id="mirnet-slider", max_height=400,
                        )
                        baseline_out = gr.ImageSlider(label="Input | PIL autocontrast", type="filepath", format="png", elem_id="autocontrast-slider", max_height=400)
                    side_by_side = gr.Gallery(label="Side by side", columns=3, object_fit="contain", height=260, format="png", elem_id="side-by-side")
                    metrics_out = gr.Markdown(elem_id="metrics")
                    files_out = gr.File(label="Full-resolution results (PNG)", file_count="multiple", elem_id="downloads")
            examples = example_rows()
            if examples:
                gr.Examples(examples, inputs=[image_in, reference_in], label=EXAMPLES_LABEL, cache_examples=False)
        with gr.Tab("Several photos", visible=bool(space.sources)):
            with gr.Row():
                with gr.Column(scale=1):
                    photos_in = gr.File(label=f"Photos (up to {MAX_PHOTOS})", file_count="multiple", file_types=["image"],
                                        type="filepath", elem_id="photos")
                    many_button = gr.Button("Enhance all", variant="primary", elem_id="enhance-all-button")
                    many_status = gr.Markdown(elem_id="many-status")
                with gr.Column(scale=2):
                    many_slider = gr.ImageSlider(label="Input | MIRNet (click a photo below to compare it here)", type="filepath",
                                                 format="png", elem_id="results-slider", max_height=400)
                    many_gallery = gr.Gallery(label="Each photo: input | MIRNet", columns=2, object_fit="contain", height=400,
                                              format="png", elem_id="results-gallery")
                    many_zip = gr.File(label="All results, full resolution (zip of PNGs and notes.txt)", elem_id="results-zip")
        one_photo = [image_in, reference_in, checkpoint_in, tiling_in, tile_in, brightness_in, strength_in, auto_exposure_in,
                     exposure_in]
        one_result = [status, mirnet_out, baseline_out, side_by_side, metrics_out, files_out, exposure_in]
        button.click(space.enhance, inputs=one_photo, outputs=one_result, api_name="enhance")
        # a slider applies when it is released, without another click
        for control in (brightness_in, strength_in):
            control.release(space.rerun, inputs=one_photo, outputs=one_result, api_name=False)
        auto_exposure_in.input(space.rerun, inputs=one_photo, outputs=one_result, api_name=False)
        exposure_in.release(space.rerun_at_exposure, inputs=one_photo, outputs=[*one_result, auto_exposure_in],
                            api_name="render_exposure")
        many_button.click(
            space.enhance_many,
            inputs=[photos_in, checkpoint_in, brightness_in, strength_in, auto_exposure_in, exposure_in],
            outputs=[many_status, many_gallery, many_slider, many_zip],
            api_name="enhance_many",
        )
        many_gallery.select(show_pair, inputs=[many_gallery], outputs=[many_slider], api_name="compare")
    return demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="LABEL=FOLDER_OR_HUB_ID (repeatable, or comma-separated); default $MIRNET_MODEL, else space/checkpoints/*")
    parser.add_argument("--host", default=None, help="address to listen on (default $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests run at once (each holds a model activation in memory)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests that may wait; more are refused")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--precision", dest="precision", default=os.environ.get("MIRNET_PRECISION", "auto"), choices=PRECISIONS,
                        help="precision of the forward pass: auto = bf16 autocast on a GPU or a CPU with native bf16, "
                        "else fp32 (default $MIRNET_PRECISION or auto)")
    args = parser.parse_args(argv)
    try:
        args.checkpoints = default_checkpoints(args.model)
        pick_device(args.device)
    except (ValueError, DeviceError) as err:
        parser.error(str(err))
    return args


def launch(demo: gr.Blocks, concurrency: int = 1, queue_size: int = 16, max_file_size=MAX_FILE_SIZE, **kwargs):
    """Queue (bounded) and launch; also used by the tests with prevent_thread_lock=True."""
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return demo.launch(max_file_size=max_file_size, theme=theme, css=CSS, **kwargs)


def main(argv=None):
    args = parse_args(argv)
    demo = build_demo(args.checkpoints, device=args.device, precision=args.precision)
    launch(demo, args.concurrency, args.queue_size, server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
