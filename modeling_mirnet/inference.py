"""The runtime the tools share (`mirnet-enhance`, the Space, evaluation, the benchmarks): which model (a folder or a
Hub id), on which device and in which precision it runs, compiled or not, and out-of-memory errors that suggest a
tile size. The steps themselves are the pipeline's (`pipeline_mirnet`: image -> pixel values -> network, whole or in
tiles, with the user's controls -> 8-bit image), so every way in runs the same code.

    enhancer = Enhancer.from_pretrained("org/mirnet-lol", device="auto", precision="auto")
    enhancer("dark.jpg", tile_size=512, on_tile=lambda done, total: print(f"tile {done}/{total}")).save("bright.png")

This file stays in the package: it never travels with a checkpoint.
"""

from __future__ import annotations

import math
import os

import torch

from .image_processing_mirnet import MIRNetImageProcessor
from .modeling_mirnet import BORDER_MARGIN, MIRNetModel, mirrored_margin
from .pipeline_mirnet import (
    PRECISION_DTYPES,
    MIRNetImageToImagePipeline,
    autocast_context,
    enhance_with_controls,
    prepare_image,
    rendered_exposure,
)
from .tiling import DEFAULT_TILE_OVERLAP, tile_starts

# The tile sizes the tools offer (the Space's slider) and suggest when a photo does not fit in memory: multiples of
# TILE_SIZE_STEP from MIN_TILE_SIZE (below it, tiles cost more in seams and overhead than they save) to MAX_TILE_SIZE.
# Whether a model can take a tile size at all is `tiling.check_tile_settings`.
MIN_TILE_SIZE, MAX_TILE_SIZE, TILE_SIZE_STEP = 128, 2048, 32
SUGGESTED_TILE = 512  # the tile size suggested when a whole image does not fit in memory
# One list of the image files the tools pick up from a folder (the CLI; modeling_mirnet/data.py for datasets).
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
PRECISIONS = ("auto", *PRECISION_DTYPES)
# torch's own CPU feature checks (cpuinfo): the instructions that make bf16 convolutions faster than fp32
BF16_CPU_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


# ----------------------------------------------------------------------------------------------- where it runs


def find_cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's inductor backend would use on CPU ($CXX, g++, clang++, c++), or None."""
    import shutil

    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def compile_model(model: MIRNetModel) -> MIRNetModel:
    """Compile `model` in place for inference with torch.compile (inductor): later calls of `model(...)`, and so
    `model.enhance`, run the compiled network. The first call of each input shape and precision compiles (tens of
    seconds on a CPU; BENCHMARKS.md); tiles share one shape (plus one for the downscaled copy whose statistics they
    share), so a large photo in tiles pays it about twice.

    Weights are frozen into the compiled code ("freezing": oneDNN prepacks them on CPU): compile a model whose weights
    will not change. Raises DeviceError on a CPU machine with no C++ compiler (inductor needs one).
    """
    device = next(model.parameters()).device
    if device.type == "cpu" and find_cxx_compiler() is None:
        raise DeviceError("compiling the model (compile=True, --compile) needs a C++ compiler on CPU (torch.compile's inductor backend): install g++ "
                          "or clang++, or run without compiling")
    model.eval()
    model.compile(dynamic=False, options={"freezing": True})
    return model


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 instructions (AVX512-BF16 or AMX): only then is bf16 autocast a speed-up.

    Without them oneDNN emulates bf16 and runs slower than fp32; set MIRNET_CPU_BF16=1/0 to override the check.
    """
    override = os.environ.get("MIRNET_CPU_BF16")
    if override in ("0", "1"):
        return override == "1"
    return any(getattr(torch.cpu, check, lambda: False)() for check in BF16_CPU_CHECKS)


class DeviceError(ValueError):
    """A device name that is not valid, or names hardware this machine does not have."""


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): the GPU when there is one, else the CPU; otherwise the named device, checked to exist."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} requested but MPS is not available")
    return device


def resolve_dtype(precision: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """The dtype the forward pass runs in (under autocast; the weights stay float32) for `precision` on `device`.

    "fp32" -> float32; "bf16" -> bfloat16; "auto" -> bfloat16 on a CUDA GPU that supports it and on a CPU with
    native bf16 (`cpu_has_fast_bf16`), float32 elsewhere. torch.float32 and torch.bfloat16 are taken as they are.
    """
    if isinstance(precision, torch.dtype):
        if precision in PRECISION_DTYPES.values():
            return precision
        raise ValueError(f"unsupported precision {precision}: expected torch.float32 or torch.bfloat16")
    if precision == "auto":
        device = torch.device(device)
        fast_bf16 = (device.type == "cuda" and torch.cuda.is_bf16_supported()) or (
            device.type == "cpu" and cpu_has_fast_bf16()
        )
        return torch.bfloat16 if fast_bf16 else torch.float32
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return PRECISION_DTYPES[precision]


def precision_name(dtype: torch.dtype) -> str:
    """"bf16" or "fp32", as the tools show it."""
    return next(name for name, value in PRECISION_DTYPES.items() if value == dtype)


def describe_device(device: str | torch.device, dtype: torch.dtype) -> str:
    """Where and in which precision the network runs, for logs and UIs: "CPU (2 threads), bf16 autocast",
    "GPU (NVIDIA H100 80GB HBM3), fp32"."""
    device = torch.device(device)
    if device.type == "cuda":
        where = f"GPU ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        threads = torch.get_num_threads()
        where = f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    else:
        where = str(device)
    return f"{where}, {'bf16 autocast' if dtype == torch.bfloat16 else 'fp32'}"


# ----------------------------------------------------------------------------------------------- which model


def looks_like_local_path(name: str | os.PathLike) -> bool:
    """True when `name` is meant as a local path, not a Hub id ("org/name"): it exists, starts with ".", "/" or
    "~", or has more than one "/" or a backslash (a Hub id has at most one "/")."""
    name = os.fspath(name)
    return os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


class ModelLoadError(RuntimeError):
    """A model folder or Hub id that cannot be loaded; the message says which and why."""


def load_mirnet(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[MIRNetModel, MIRNetImageProcessor]:
    """(model, image_processor) from a local folder or a Hub id, in eval mode on `device` ("auto" allowed).

    Works offline for local folders and for Hub ids already in the cache (set HF_HUB_OFFLINE=1). Raises
    ModelLoadError naming the source when it is missing or is not a MIRNet checkpoint, DeviceError for a device
    this machine does not have.
    """
    from transformers import AutoModel

    device = pick_device(device)
    name = os.path.expanduser(os.fspath(name_or_path))
    if looks_like_local_path(name) and not os.path.isdir(name):
        raise ModelLoadError(f"{name}: no such model folder")
    try:
        model = AutoModel.from_pretrained(name, dtype=dtype) if dtype else AutoModel.from_pretrained(name)
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{name}: cannot load a MIRNet model ({first_line})") from err
    if not isinstance(model, MIRNetModel):
        raise ModelLoadError(f"{name}: is a {type(model).__name__}, not a MIRNet model")
    try:
        processor = MIRNetImageProcessor.from_pretrained(name)
    except (OSError, ValueError):  # a folder with weights only: the processor follows from the config
        processor = MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    return model.to(device).eval(), processor


# ----------------------------------------------------------------------------------------------- running it


def count_tiles(height: int, width: int, tile_size: int | None, overlap: int = DEFAULT_TILE_OVERLAP,
                margin: int = BORDER_MARGIN, size_divisor: int = 4) -> int:
    """How many network calls `MIRNetModel.enhance` makes for a (padded) height x width input, with its mirrored
    `margin` (for a model of this `size_divisor`): 1 without tiling."""
    if tile_size is None:
        return 1
    margin = mirrored_margin(height, width, margin, size_divisor)
    sides = (height + 2 * margin, width + 2 * margin)
    return math.prod(len(tile_starts(n, min(tile_size, n), min(tile_size, n) - overlap)) for n in sides)


def is_out_of_memory(err: BaseException) -> bool:
    """True for the errors PyTorch and Python raise when an allocation fails (CPU, CUDA or MPS)."""
    if isinstance(err, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    message = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        s in message for s in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def smaller_tile(height: int, width: int, tile_size: int | None, overlap: int = DEFAULT_TILE_OVERLAP) -> int | None:
    """A tile size the tools offer (`MIN_TILE_SIZE`...) that needs less memory than `tile_size` (None: the whole
    image), or None when there is no such size worth suggesting."""
    base = tile_size if tile_size is not None else max(height, width)
    suggested = min(SUGGESTED_TILE, base // 2) // TILE_SIZE_STEP * TILE_SIZE_STEP
    return suggested if suggested >= MIN_TILE_SIZE and suggested > 2 * overlap else None


class OutOfMemory(RuntimeError):
    """The network ran out of memory; `suggested_tile` (None: none smaller would do) is a tile size that needs less.

    One error for every caller: the CLI adds its flag (--tile-size N), the Space its control.
    """

    def __init__(self, device, height: int, width: int, tile_size: int | None, overlap: int = DEFAULT_TILE_OVERLAP):
        self.device, self.tile_size = device, tile_size
        self.suggested_tile = smaller_tile(height, width, tile_size, overlap)
        how = "as a whole" if tile_size is None else f"in tiles of {tile_size} px"
        advice = (
            f"try tiles of {self.suggested_tile} px" if self.suggested_tile
            else "use a smaller image or a device with more memory"
        )
        super().__init__(f"out of memory on {device} enhancing a {width}x{height} image {how}: {advice}")


class Enhancer:
    """A loaded model and its image processor, run in one precision: image in, enhanced 8-bit RGB image out.

    The three steps are public so that callers can place them (the Space runs `forward` on the GPU worker):
    `preprocess` (file or image -> padded [0, 1] tensors), `forward` (network under autocast, whole or tiled,
    `on_tile(done, total)` after each tile, out-of-memory as `OutOfMemory`), `postprocess` (crop, clamp, 8-bit PIL).
    They are the pipeline's steps (`pipeline_mirnet`); the Enhancer adds the device, "auto" precision, compilation
    and the out-of-memory error. Calls share no state: several threads may use one Enhancer.
    """

    def __init__(self, model: MIRNetModel, processor: MIRNetImageProcessor | None = None, precision="fp32",
                 compile: bool = False):
        self.model = compile_model(model) if compile else model
        self.processor = processor or MIRNetImageProcessor(size_divisor=model.config.size_divisor)
        self.autocast_dtype = resolve_dtype(precision, self.device)
        self.compiled = compile

    @classmethod
    def from_pretrained(cls, name_or_path, device="auto", precision="auto", compile: bool = False) -> "Enhancer":
        """Load a folder or Hub id (`load_mirnet`) on `device` ("auto": the GPU when present); `compile`: see
        `compile_model` (worth it for many photos of one size, or large photos in tiles)."""
        return cls(*load_mirnet(name_or_path, device=device), precision=precision, compile=compile)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def precision(self) -> str:
        return precision_name(self.autocast_dtype)

    def describe(self) -> str:
        """Where and how it runs, for logs and UIs (`describe_device`)."""
        return describe_device(self.device, self.autocast_dtype) + (", torch.compile" if self.compiled else "")

    def preprocess(self, image) -> dict:
        """A file path, PIL image, array or tensor -> {"pixel_values", "original_sizes"} (`pipeline_mirnet.prepare_image`).

        Files are read with `load_image` (ImageLoadError names the file and the problem)."""
        return prepare_image(self.processor, image)

    def forward(
        self, pixel_values: torch.Tensor, tile_size: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP,
        on_tile=None, brightness: float = 0.0, strength: float = 1.0, precision=None, exposure=None,
    ) -> torch.Tensor:
        """The network's float32 output for `pixel_values`, on the model's device, with the user's controls
        (`pipeline_mirnet.enhance_with_controls`: `exposure` and `brightness` in stops, `strength` 0-1; the defaults
        leave the model's output as it is). `precision` overrides the Enhancer's for this call.

        Raises OutOfMemory (with a suggested tile size) when an allocation fails, ValueError for bad tile settings
        or controls.
        """
        dtype = self.autocast_dtype if precision is None else resolve_dtype(precision, self.device)
        try:
            return enhance_with_controls(self.model, pixel_values, exposure, brightness, strength, dtype, tile_size,
                                         tile_overlap, on_tile)
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
        # raised outside the except block, so the failed attempt's tensors are freed first
        height, width = pixel_values.shape[-2:]
        raise OutOfMemory(self.device, height, width, tile_size, tile_overlap)

    @property
    def conditioned(self) -> bool:
        """Whether the model renders the exposure it is asked for (`config.exposure_conditioning`)."""
        return bool(self.model.config.exposure_conditioning)

    def exposure(self, pixel_values: torch.Tensor, exposure=None, brightness: float = 0.0) -> torch.Tensor | None:
        """The stops the model renders for these controls (`pipeline_mirnet.rendered_exposure`); None for a model
        without exposure conditioning."""
        return rendered_exposure(self.model, pixel_values, exposure, brightness)

    def postprocess(self, reconstruction: torch.Tensor, original_sizes) -> list:
        """Network output -> 8-bit RGB PIL images cropped to `original_sizes`."""
        return self.processor.post_process_image_to_image(reconstruction, original_sizes)

    def __call__(self, image, tile_size: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP, on_tile=None,
                 brightness: float = 0.0, strength: float = 1.0, exposure=None):
        """One image (file path, PIL, numpy or torch) in, the enhanced PIL image of the same size out."""
        inputs = self.preprocess(image)
        output = self.forward(inputs["pixel_values"], tile_size, tile_overlap, on_tile, brightness, strength, exposure=exposure)
        return self.postprocess(output, inputs["original_sizes"])[0]


def enhance_image(
    model: MIRNetModel, processor: MIRNetImageProcessor, image, tile_size: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP, precision="fp32", on_tile=None, brightness: float = 0.0, strength: float = 1.0,
    exposure=None,
):
    """`Enhancer(model, processor, precision)(image, ...)`: one image in, the enhanced PIL image of the same size out."""
    return Enhancer(model, processor, precision)(image, tile_size, tile_overlap, on_tile, brightness, strength, exposure)


def mirnet_pipeline(model, image_processor=None, device=None, precision=None, **kwargs) -> MIRNetImageToImagePipeline:
    """The MIRNet pipeline from a model folder, a Hub id or a loaded MIRNetModel, with this package installed (no
    `trust_remote_code` needed). `device`: "auto", "cpu", "cuda", ... (default: where the model is; "auto" for a
    path); `precision`: "fp32", "bf16" or "auto" (`resolve_dtype`); other keywords (`tile_size`, ...) become the
    pipeline's defaults."""
    if isinstance(model, (str, os.PathLike)):
        model, loaded_processor = load_mirnet(model, device=device or "auto")
        image_processor = image_processor or loaded_processor
    elif device is not None:
        model = model.to(pick_device(device))
    if precision is not None:
        kwargs["precision"] = precision_name(resolve_dtype(precision, model.device))
    image_processor = image_processor or MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    return MIRNetImageToImagePipeline(model=model, image_processor=image_processor, device=model.device, **kwargs)


__all__ = [
    "DEFAULT_TILE_OVERLAP",
    "MAX_TILE_SIZE",
    "MIN_TILE_SIZE",
    "TILE_SIZE_STEP",
    "IMAGE_SUFFIXES",
    "PRECISIONS",
    "DeviceError",
    "Enhancer",
    "ModelLoadError",
    "OutOfMemory",
    "autocast_context",
    "compile_model",
    "count_tiles",
    "cpu_has_fast_bf16",
    "describe_device",
    "find_cxx_compiler",
    "enhance_image",
    "is_out_of_memory",
    "load_mirnet",
    "mirnet_pipeline",
    "looks_like_local_path",
    "pick_device",
    "precision_name",
    "resolve_dtype",
]
