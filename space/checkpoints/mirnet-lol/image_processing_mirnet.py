"""Image processor for MIRNet: any image in, [0, 1] RGB tensors padded for the network out, and back to PIL."""

import numbers
import os

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import ImageInput
from transformers.processing_utils import ImagesKwargs, Unpack

# Larger images are refused with a clear error (a 12 MP photo is 12e6); tiled inference keeps memory bounded.
MAX_IMAGE_PIXELS = 100_000_000
MIN_IMAGE_SIDE = 1


class ImageLoadError(ValueError):
    """An input that is not a usable image: the message names the file (when there is one) and the problem.

    `problem` is the message without the name, so a caller that shows the file under another name (an upload's
    original name, a path it already printed) names it once: `f"{name}: {err.problem}"`."""

    def __init__(self, problem: str, name: str | None = None):
        self.problem, self.name = problem, name
        super().__init__(problem if name is None else f"{name}: {problem}")

    def __reduce__(self):  # pickles (e.g. from a worker process) with its parts
        return type(self), (self.problem, self.name)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> PIL.Image.Image:
    """Open and fully decode an image file, or raise ImageLoadError naming the file and what is wrong with it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageLoadError("no such file", path)
    if os.path.getsize(path) == 0:
        raise ImageLoadError("empty file (0 bytes)", path)
    try:
        with PIL.Image.open(path) as image:
            check_image_size(image.size, max_pixels, path)
            image.load()  # decode now so a truncated file fails here, not later
            return PIL.ImageOps.exif_transpose(image)
    except ImageLoadError:
        raise
    except PIL.Image.DecompressionBombError:
        raise ImageLoadError(f"image too large: over the limit of {max_pixels / 1e6:.0f} MP", path) from None
    except PIL.UnidentifiedImageError:
        raise ImageLoadError("not an image file PIL can read", path) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"cannot decode image ({err}); the file may be truncated or corrupt", path) from None


def check_image_size(size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS, name: str = "image") -> None:
    """Raise ImageLoadError for a zero-size image or one of more than `max_pixels` pixels (size is (width, height))."""
    width, height = size
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise ImageLoadError(f"zero-size image ({width}x{height})", name)
    if width * height > max_pixels:
        raise ImageLoadError(
            f"image too large: {width}x{height} is {width * height / 1e6:.0f} MP, over the limit of {max_pixels / 1e6:.0f} MP",
            name,
        )


def to_float_rgb(
    image, max_pixels: int = MAX_IMAGE_PIXELS, *, do_rescale: bool = True, rescale_factor: float = 1 / 255
) -> np.ndarray:
    """Any PIL image (any mode; EXIF orientation applied), numpy array or torch tensor -> float32 HxWx3 in [0, 1].

    Arrays and tensors may be HxW, HxWxC or CxHxW with 1, 3 or 4 channels. Alpha is dropped.

    With `do_rescale` (the default), integer data is scaled to [0, 1]: 8-bit data (uint8 arrays, 8-bit PIL images)
    is multiplied by `rescale_factor` (1/255), other integer types by one over their type's maximum (uint16 and 16-bit
    PIL images by 1/65535). With `do_rescale=False` nothing is scaled: integer data is taken as it is. Float (and
    bool) data is never scaled. Whatever the path, the values must end up in [0, 1], or ImageLoadError says why.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, max_pixels)
    if isinstance(image, PIL.Image.Image):
        check_image_size(image.size, max_pixels)
        image = PIL.ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # single-channel high bit depth
            array = np.asarray(image, dtype=np.float32)
            if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
                return finish_rgb(array, rescale_divisor(65535, do_rescale, rescale_factor), do_rescale)
            if image.mode == "I":  # 32-bit container holding 8-bit values
                return finish_rgb(array, rescale_divisor(255, do_rescale, rescale_factor), do_rescale)
            return finish_rgb(array, None, do_rescale)  # "F": float data, never scaled
        array = np.asarray(image.convert("RGB"), dtype=np.float32)
        return finish_rgb(array, rescale_divisor(255, do_rescale, rescale_factor), do_rescale)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.float().numpy() if image.dtype == torch.bfloat16 else image.numpy()
    if not isinstance(image, np.ndarray):
        raise ImageLoadError(f"expected a PIL image, numpy array, torch tensor or file path, got {type(image).__name__}")
    array = image
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CxHxW -> HxWxC
    if array.ndim != 2 and (array.ndim != 3 or array.shape[-1] not in (1, 3, 4)):
        raise ImageLoadError(f"expected an image array of shape HxW, HxWxC or CxHxW (C in 1, 3, 4), got {image.shape}")
    check_image_size((array.shape[1], array.shape[0]), max_pixels)
    if np.issubdtype(array.dtype, np.integer):
        divisor = rescale_divisor(int(np.iinfo(array.dtype).max), do_rescale, rescale_factor)
        return finish_rgb(array.astype(np.float32), divisor, do_rescale)
    if array.dtype == np.bool_:
        return finish_rgb(array.astype(np.float32), None, do_rescale)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ImageLoadError("image array contains NaN or infinite values")
    return finish_rgb(array, None, do_rescale)


def rescale_divisor(type_max: int, do_rescale: bool, rescale_factor: float) -> float | None:
    """What integer data of range [0, type_max] is divided by (None: not scaled); see `to_float_rgb`."""
    if not do_rescale:
        return None
    return 1.0 / rescale_factor if type_max == 255 else float(type_max)


def finish_rgb(array: np.ndarray, divisor: float | None, do_rescale: bool) -> np.ndarray:
    """Scale float32 HxW or HxWxC pixel data by 1/divisor, check it lies in [0, 1], drop alpha, make 3 channels."""
    if divisor is not None:
        array = array / divisor
    low, high = float(array.min(initial=0)), float(array.max(initial=0))
    if low < -1e-3 or high > 1 + 1e-3:
        if divisor is not None:
            hint = f"after dividing the integer data by {divisor:g}; set rescale_factor to map its range to [0, 1]"
        elif do_rescale:
            hint = "float data is never rescaled: pass 8-bit data as uint8, or divide it by 255"
        else:
            hint = "with do_rescale=False nothing is rescaled: leave do_rescale=True for 8-bit or 16-bit images"
        raise ImageLoadError(f"image values must be in [0, 1], got [{low:.3g}, {high:.3g}] ({hint})")
    if array.ndim == 2:
        array = array[..., None]
    array = np.clip(array[..., :3], 0, 1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def reflect_pad(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad (..., H, W) images at the bottom and right to `height` x `width`, repeating the reflection where the
    padding is larger than the image (numpy's "reflect"); an image one pixel high or wide has its edge repeated
    (`pad_to_multiple` pads with it)."""
    edge = min(images.shape[-2:]) == 1
    for dim, target in ((-2, height), (-1, width)):
        while images.shape[dim] < target:
            size = images.shape[dim]
            if edge:
                extra = images.narrow(dim, size - 1, 1).repeat_interleave(target - size, dim=dim)
            else:
                step = min(target - size, size - 1)
                extra = images.narrow(dim, size - 1 - step, step).flip(dim)
            images = torch.cat([images, extra], dim=dim)
    return images


def padded_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """Smallest size >= (height, width) of multiples of `divisor`, at least 2 * divisor: what every input is padded to."""
    return max(-(-height // divisor) * divisor, 2 * divisor), max(-(-width // divisor) * divisor, 2 * divisor)


def pad_to_multiple(images: list[torch.Tensor], size_divisor: int | None) -> list[torch.Tensor]:
    """Reflect-pad (..., H, W) images at the bottom and right to one size: the `padded_size` of the largest (with
    `size_divisor` None, the largest itself). The one padder of the package: the image processor's `pad`,
    validation and evaluation use it."""
    height, width = max(image.shape[-2] for image in images), max(image.shape[-1] for image in images)
    if size_divisor is not None:
        height, width = padded_size(height, width, size_divisor)
    return [reflect_pad(image, height, width) for image in images]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Model output, any float dtype -> the 8-bit values a PNG of it holds (clamped to [0, 1], rounded): the one
    quantisation of the package (post-processing, validation and the metrics use it)."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)


class MIRNetImageProcessorKwargs(ImagesKwargs, total=False):
    """
    size_divisor (`int`, *optional*, defaults to `self.size_divisor`):
        Pad height and width to multiples of it (at least twice it): `config.size_divisor`.
    max_pixels (`int`, *optional*, defaults to `self.max_pixels`):
        Larger images are refused with an error.
    """

    size_divisor: int
    max_pixels: int


class MIRNetImageProcessor(PilBackend):
    r"""
    Prepares images for [`MIRNetModel`] and turns its output back into images.

    `preprocess` converts each image to RGB in [0, 1] (any PIL mode, EXIF orientation applied; numpy arrays and
    torch tensors too), reflect-pads it at the bottom/right so height and width are multiples of `size_divisor`
    (images of different sizes in one batch are padded to the largest), and returns `pixel_values`.
    `post_process_image_to_image(outputs, original_sizes)` crops the output back to the sizes of the images.

    Args:
        do_rescale (`bool`, defaults to `True`): scale integer pixel data to [0, 1]: 8-bit data (8-bit PIL images,
            uint8 arrays) is multiplied by `rescale_factor`, wider integer types by one over their maximum (16-bit
            PNG/TIFF and uint16 arrays by 1/65535). With `False`, nothing is scaled: every input, integer arrays
            included, must already hold values in [0, 1] (an 8-bit photo is then refused with an error). Float
            input is never scaled and must always be in [0, 1].
        rescale_factor (`float`, defaults to `1/255`): the scale of 8-bit data when `do_rescale` is set.
        do_pad (`bool`, defaults to `True`): reflect-pad to a multiple of `size_divisor` (at least twice it). With
            `False`, images are only padded to the largest of the batch, and the model refuses sizes it cannot take.
        size_divisor (`int`, defaults to 4): `2 ** (config.num_streams - 1)` of the model (`config.size_divisor`).
        max_pixels (`int`, defaults to 100_000_000): larger images are refused with an error.

    Each of these can also be given to a call (`processor(images, do_pad=False)`), together with `return_tensors`
    (`"pt"`, the default, `"np"` or `None` for numpy arrays); any other keyword is a TypeError. MIRNet takes
    [0, 1] RGB as it is: it never resizes, crops or normalises.
    """

    valid_kwargs = MIRNetImageProcessorKwargs
    model_input_names = ["pixel_values"]
    do_rescale = True
    rescale_factor = 1 / 255
    do_resize = False
    do_normalize = False
    do_pad = True
    size_divisor = 4
    max_pixels = MAX_IMAGE_PIXELS
    # the keywords a call accepts; the other ImagesKwargs (resizing, normalising, ...) do not apply to MIRNet
    call_kwargs = ("do_rescale", "rescale_factor", "do_pad", "size_divisor", "max_pixels", "return_tensors")

    def __init__(self, **kwargs: Unpack[MIRNetImageProcessorKwargs]):
        super().__init__(**kwargs)
        self._validate_preprocess_kwargs(**self._settings())

    def _settings(self) -> dict:
        """The processor's value of every setting a call may override."""
        return {name: getattr(self, name, None) for name in self.valid_kwargs.__annotations__}

    def preprocess(self, images: ImageInput, **kwargs: Unpack[MIRNetImageProcessorKwargs]) -> BatchFeature:
        """Images (one or a list) -> BatchFeature(pixel_values=(B, 3, H, W) float32); keywords as in the class
        docstring override the processor's settings for this call (None keeps them)."""
        unknown = sorted(set(kwargs) - set(self.call_kwargs))
        if unknown:
            raise TypeError(
                f"MIRNetImageProcessor got unexpected keyword argument(s) {', '.join(unknown)}; it accepts "
                f"{', '.join(self.call_kwargs)}"
            )
        kwargs = {name: value for name, value in kwargs.items() if value is not None or name == "return_tensors"}
        kwargs.setdefault("return_tensors", "pt")  # torch tensors unless asked otherwise (None: numpy)
        # checked before the base class's type check, so that a bad value gets the message that names it
        self._validate_preprocess_kwargs(**{**self._settings(), **kwargs})
        return super().preprocess(images, **kwargs)

    def _validate_preprocess_kwargs(self, **kwargs):
        """Raise a ValueError naming the first setting of the wrong type or out of range."""
        for name in ("do_resize", "do_center_crop", "do_normalize"):
            if kwargs.get(name):
                raise ValueError(f"{name} is not supported: MIRNet takes [0, 1] RGB at its own size")
        for name in ("do_rescale", "do_pad"):
            if not isinstance(kwargs.get(name, True), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {kwargs[name]!r}")
        for name in ("size_divisor", "max_pixels"):
            value = kwargs.get(name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        factor = kwargs.get("rescale_factor", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < float("inf"):
            raise ValueError(f"rescale_factor must be a positive number, got {factor!r}")
        if kwargs.get("return_tensors") not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {kwargs['return_tensors']!r}")

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> list:
        """One image or a list of them; `process_image` says what is wrong with any it cannot read."""
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        if not images:
            raise ValueError("preprocess needs at least one image")
        return images

    def process_image(self, image, do_rescale: bool, rescale_factor: float, max_pixels: int, **kwargs) -> np.ndarray:
        """One image (PIL, array, tensor or file path) -> float32 (3, H, W) in [0, 1]. Rescaling happens here, not in
        `_preprocess`, because its factor depends on the source's bit depth (8 or 16 bits), lost after decoding."""
        rgb = to_float_rgb(image, max_pixels, do_rescale=do_rescale, rescale_factor=rescale_factor)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))

    def pad(self, images: list[np.ndarray], size_divisor: int, do_pad: bool = True, **kwargs) -> list[np.ndarray]:
        """Reflect-pad (3, H, W) images at the bottom and right to one size: with `do_pad`, multiples of
        `size_divisor` (at least twice it, `padded_size`); without it, the largest of the batch."""
        padded = pad_to_multiple([torch.from_numpy(image) for image in images], size_divisor if do_pad else None)
        return [image.numpy() for image in padded]

    def _preprocess(
        self, images: list[np.ndarray], do_pad: bool, size_divisor: int, return_tensors: str | None, **kwargs
    ) -> BatchFeature:
        """Pad the converted images to one size and stack them into `pixel_values`."""
        pixel_values = np.stack(self.pad(images, size_divisor=size_divisor, do_pad=do_pad))
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)

    def post_process_image_to_image(self, reconstruction, original_sizes=None) -> list[PIL.Image.Image]:
        """Model output (B, 3, H, W) -> list of 8-bit RGB PIL images, clamped to [0, 1] and cropped to original size."""
        if hasattr(reconstruction, "reconstruction"):
            reconstruction = reconstruction.reconstruction
        pixels = to_uint8(reconstruction).cpu()
        pixels = pixels.permute(0, 2, 3, 1).numpy()
        if original_sizes is None:
            original_sizes = [pixels.shape[1:3]] * len(pixels)
        if len(original_sizes) != len(pixels):
            raise ValueError(f"got {len(original_sizes)} original sizes for {len(pixels)} images")
        return [PIL.Image.fromarray(p[:h, :w]) for p, (h, w) in zip(pixels, original_sizes)]


__all__ = ["MIRNetImageProcessor", "ImageLoadError", "load_image", "to_float_rgb", "pad_to_multiple", "MAX_IMAGE_PIXELS"]
