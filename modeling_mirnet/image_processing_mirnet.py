"""Image processor for MIRNet: any image in, [0, 1] RGB tensors padded for the network out, and back to PIL."""

import os

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature

# Larger images are refused with a clear error (a 12 MP photo is 12e6); tiled inference keeps memory bounded.
MAX_IMAGE_PIXELS = 100_000_000
MIN_IMAGE_SIDE = 1


class ImageLoadError(ValueError):
    """An input that is not a usable image: the message names the file (when there is one) and the problem."""


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> PIL.Image.Image:
    """Open and fully decode an image file, or raise ImageLoadError naming the file and what is wrong with it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageLoadError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with PIL.Image.open(path) as image:
            check_image_size(image.size, max_pixels, path)
            image.load()  # decode now so a truncated file fails here, not later
            return PIL.ImageOps.exif_transpose(image)
    except ImageLoadError:
        raise
    except PIL.Image.DecompressionBombError:
        raise ImageLoadError(f"{path}: image too large: over the limit of {max_pixels / 1e6:.0f} MP") from None
    except PIL.UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: cannot decode image ({err}); the file may be truncated or corrupt") from None


def check_image_size(size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS, name: str = "image") -> None:
    """Raise ImageLoadError for a zero-size image or one of more than `max_pixels` pixels (size is (width, height))."""
    width, height = size
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise ImageLoadError(f"{name}: zero-size image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{name}: image too large: {width}x{height} is {width * height / 1e6:.0f} MP, "
            f"over the limit of {max_pixels / 1e6:.0f} MP"
        )


def to_float_rgb(image, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Any PIL image (any mode; EXIF orientation applied), numpy array or torch tensor -> float32 HxWx3 in [0, 1].

    Arrays and tensors may be HxW, HxWxC or CxHxW with 1, 3 or 4 channels; integer arrays are scaled by their
    type's range (uint8 by 255, uint16 by 65535), float arrays must already be in [0, 1]. Alpha is dropped.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, max_pixels)
    if isinstance(image, PIL.Image.Image):
        check_image_size(image.size, max_pixels)
        image = PIL.ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # single-channel high bit depth
            array = np.asarray(image, dtype=np.float32)
            if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
                array = array / 65535.0
            elif image.mode == "I":
                array = array / 255.0
            return np.repeat(np.clip(array, 0, 1)[..., None], 3, axis=-1)
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.float().numpy() if image.dtype == torch.bfloat16 else image.numpy()
    if not isinstance(image, np.ndarray):
        raise ImageLoadError(f"expected a PIL image, numpy array, torch tensor or file path, got {type(image).__name__}")
    array = image
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CxHxW -> HxWxC
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ImageLoadError(f"expected an image array of shape HxW, HxWxC or CxHxW (C in 1, 3, 4), got {image.shape}")
    check_image_size((array.shape[1], array.shape[0]), max_pixels)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    else:
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ImageLoadError("image array contains NaN or infinite values")
        if array.min(initial=0) < -1e-3 or array.max(initial=0) > 1 + 1e-3:
            raise ImageLoadError(
                f"float image values must be in [0, 1], got [{array.min():.3g}, {array.max():.3g}]; divide uint8 data by 255"
            )
    array = np.clip(array[..., :3], 0, 1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def reflect_pad(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad an HxWxC array at the bottom and right to `height` x `width` (repeating the reflection if needed)."""
    pad_h, pad_w = height - array.shape[0], width - array.shape[1]
    if pad_h == 0 and pad_w == 0:
        return array
    mode = "reflect" if min(array.shape[:2]) > 1 else "edge"
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


class MIRNetImageProcessor(PilBackend):
    r"""
    Prepares images for [`MIRNetModel`] and turns its output back into images.

    `preprocess` converts each image to RGB in [0, 1] (any PIL mode, EXIF orientation applied; numpy arrays and
    torch tensors too), reflect-pads it at the bottom/right so height and width are multiples of `size_divisor`
    (images of different sizes in one batch are padded to the largest), and returns `pixel_values` with the
    `original_sizes` needed by `post_process_image_to_image` to crop the output back.

    Args:
        do_rescale (`bool`, defaults to `True`): divide 8-bit values by 255 (always done for integer input).
        do_pad (`bool`, defaults to `True`): reflect-pad to a multiple of `size_divisor`.
        size_divisor (`int`, defaults to 4): `2 ** (config.height - 1)` of the model.
        max_pixels (`int`, defaults to 100_000_000): larger images are refused with an error.
    """

    model_input_names = ["pixel_values"]
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = False
    do_resize = False
    do_pad = True
    size_divisor = 4
    max_pixels = MAX_IMAGE_PIXELS

    def __init__(self, size_divisor: int = 4, max_pixels: int = MAX_IMAGE_PIXELS, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size_divisor, int) or size_divisor < 1:
            raise ValueError(f"size_divisor must be a positive integer, got {size_divisor!r}")
        self.size_divisor = size_divisor
        self.max_pixels = max_pixels

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """Smallest size >= (height, width), multiples of size_divisor and at least 2 * size_divisor."""
        d = self.size_divisor if self.do_pad else 1
        return max(-(-height // d) * d, 2 * d), max(-(-width // d) * d, 2 * d)

    def preprocess(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """Images (one or a list) -> BatchFeature(pixel_values=(B, 3, H, W) float32, original_sizes=[(h, w), ...])."""
        if kwargs:
            raise TypeError(f"MIRNetImageProcessor.preprocess got unexpected arguments: {sorted(kwargs)}")
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("preprocess needs at least one image")
        arrays = [to_float_rgb(image, self.max_pixels) for image in images]
        sizes = [tuple(a.shape[:2]) for a in arrays]
        height, width = self.padded_size(max(h for h, _ in sizes), max(w for _, w in sizes))
        batch = np.stack([reflect_pad(a, height, width) for a in arrays]).transpose(0, 3, 1, 2)
        pixel_values = np.ascontiguousarray(batch)
        if return_tensors == "pt":
            pixel_values = torch.from_numpy(pixel_values)
        elif return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        return BatchFeature(data={"pixel_values": pixel_values, "original_sizes": [list(s) for s in sizes]})

    def post_process_image_to_image(self, reconstruction, original_sizes=None) -> list[PIL.Image.Image]:
        """Model output (B, 3, H, W) -> list of 8-bit RGB PIL images, clamped to [0, 1] and cropped to original size."""
        if hasattr(reconstruction, "reconstruction"):
            reconstruction = reconstruction.reconstruction
        pixels = reconstruction.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
        pixels = pixels.permute(0, 2, 3, 1).numpy()
        if original_sizes is None:
            original_sizes = [pixels.shape[1:3]] * len(pixels)
        if len(original_sizes) != len(pixels):
            raise ValueError(f"got {len(original_sizes)} original sizes for {len(pixels)} images")
        return [PIL.Image.fromarray(p[:h, :w]) for p, (h, w) in zip(pixels, original_sizes)]


__all__ = ["MIRNetImageProcessor", "ImageLoadError", "load_image", "to_float_rgb", "MAX_IMAGE_PIXELS"]
