"""The "image-to-image" pipeline for MIRNet (transformers 5 removed its built-in one), saved beside checkpoints.

A saved folder names this class in `config.custom_pipelines`, so `pipeline("image-to-image", model=folder,
trust_remote_code=True)` builds it from the code saved there. It calls the image processor and the model directly:
image -> `MIRNetImageProcessor` -> `MIRNetModel.enhance` (with the user's exposure, brightness and strength) -> image.
With this package installed, `modeling_mirnet.mirnet_pipeline(...)` builds it from a folder or Hub id on the device
it picks; importing the package registers nothing in transformers' global pipeline registry.
"""

import contextlib

import torch
from transformers import AutoModel, Pipeline

from .exposure import MAX_EXPOSURE_STOPS, apply_controls, check_controls, check_exposure
from .image_processing_mirnet import to_float_rgb
from .tiling import DEFAULT_TILE_OVERLAP

# The autocast precisions of the forward pass (the weights stay float32); the package resolves "auto" to one of them.
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def autocast_context(device: str | torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on `device` (bf16/fp16), or nothing for fp32 / None."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def prepare_image(image_processor, image) -> dict:
    """One image (file path, PIL image, array or tensor) -> {"pixel_values": padded (1, 3, H, W), "original_sizes":
    [(height, width)]}, decoded as every way in decodes a photo (`to_float_rgb`; files through `load_image`)."""
    pixels = to_float_rgb(image, image_processor.max_pixels, do_rescale=image_processor.do_rescale,
                          rescale_factor=image_processor.rescale_factor)
    pixel_values = image_processor(pixels, return_tensors="pt")["pixel_values"]
    return {"pixel_values": pixel_values, "original_sizes": [tuple(pixels.shape[:2])]}


def rendered_exposure(model, pixel_values: torch.Tensor, exposure=None, brightness: float = 0.0) -> torch.Tensor | None:
    """The stops an exposure-conditioned model renders: `exposure` (a number or one per image; None: the model's
    prediction on each whole photo) plus `brightness`, within the model's range. None for other models, which refuse
    an `exposure` (ValueError)."""
    if not model.config.exposure_conditioning:
        if exposure is not None:
            raise ValueError("this model has no exposure input (it was trained without exposure conditioning); "
                             "use brightness to adjust its output")
        return None
    if exposure is None:
        with torch.inference_mode():
            stops = model.predict_exposure(pixel_values.to(model.device))
    else:
        stops = check_exposure(exposure, len(pixel_values)).to(model.device)
    return (stops + brightness).clamp(-MAX_EXPOSURE_STOPS, MAX_EXPOSURE_STOPS)


def enhance_with_controls(
    model, pixel_values: torch.Tensor, exposure=None, brightness: float = 0.0, strength: float = 1.0,
    dtype: torch.dtype = torch.float32, tile_size: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP,
    on_tile=None,
) -> torch.Tensor:
    """`model.enhance` under autocast in `dtype`, with the user's controls: the float32 output on the model's device.

    Exposure-conditioned models render `exposure` (stops; None: their prediction) plus `brightness` themselves; other
    models take no `exposure`, and `brightness` is the highlight-preserving curve of `exposure.apply_controls` on
    their output. `strength` blends the result with the input (1: the result, 0: the input).
    """
    check_controls(brightness, strength)
    stops = rendered_exposure(model, pixel_values, exposure, brightness)
    with autocast_context(model.device, dtype):
        output = model.enhance(pixel_values, stops, tile_size=tile_size, tile_overlap=tile_overlap, on_tile=on_tile)
    output = output.float()
    return apply_controls(output, pixel_values.to(output.device), 0.0 if stops is not None else brightness, strength)


class MIRNetImageToImagePipeline(Pipeline):
    """Low-light image in (PIL image, array or file path), enhanced PIL image of the same size out.

    Call (or construction) parameters: `tile_size` (and `tile_overlap`) run large photos in overlapping tiles to bound
    memory; `precision` ("fp32", the default, or "bf16") is the autocast precision of the forward pass, the weights
    stay float32 (`modeling_mirnet.mirnet_pipeline` also takes "auto"); `on_tile(done, total)` reports progress;
    `brightness` (stops, default 0: the model's own exposure; highlights roll off rather than clip) and `strength`
    (1: the enhanced image, 0: the input) adjust the result. Models trained with exposure conditioning also take an
    absolute `exposure` (stops relative to the input; default: the model's prediction; 0 keeps the input's
    brightness), and render `exposure + brightness` themselves.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, tile_size=None, tile_overlap=None, precision=None, on_tile=None, brightness=None,
                             strength=None, exposure=None, **kwargs):
        if precision is not None and precision not in PRECISION_DTYPES:
            raise ValueError(f"precision must be one of {', '.join(PRECISION_DTYPES)}, got {precision!r}")
        forward = {"tile_size": tile_size, "tile_overlap": tile_overlap, "precision": precision, "on_tile": on_tile,
                   "brightness": brightness, "strength": strength, "exposure": exposure}
        return {}, {key: value for key, value in forward.items() if value is not None}, {}

    def preprocess(self, image):
        return prepare_image(self.image_processor, image)

    def _forward(self, model_inputs, tile_size=None, tile_overlap=DEFAULT_TILE_OVERLAP, precision="fp32", on_tile=None,
                 brightness=0.0, strength=1.0, exposure=None):
        reconstruction = enhance_with_controls(
            self.model, model_inputs["pixel_values"], exposure, brightness, strength, PRECISION_DTYPES[precision],
            tile_size, tile_overlap, on_tile,
        )
        return {"reconstruction": reconstruction, "original_sizes": model_inputs["original_sizes"]}

    def postprocess(self, model_outputs):
        return self.image_processor.post_process_image_to_image(model_outputs["reconstruction"],
                                                                model_outputs["original_sizes"])[0]


# What PIPELINE_REGISTRY.register_pipeline would record, kept on the class alone (no global registration): it makes
# `save_pretrained` write `custom_pipelines` into config.json and copy this file (and what it imports) beside the
# weights.
MIRNetImageToImagePipeline._registered_impl = {"image-to-image": {"impl": MIRNetImageToImagePipeline, "pt": (AutoModel,)}}


__all__ = ["MIRNetImageToImagePipeline"]
