"""Scoring a model on image pairs: the one loop behind training's validation and `train/evaluate.py`.

Pairs are decoded once into uint8 tensors (`decode_pairs`), then `score_pairs` runs the model on whole images,
batched where sizes agree, and computes every metric on the model's device in float32 (`metrics.psnr_batch`,
`ssim_batch`, `gt_mean_scale`), on the 8-bit-quantized output, as a saved PNG would be scored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from .exposure import exposure_stops
from .inference import DEFAULT_TILE_OVERLAP, autocast_context
from .image_processing_mirnet import pad_to_multiple, to_uint8
from .metrics import gt_mean_scale, psnr_batch, quantize, ssim_batch
from .losses import enhancement_loss
from .modeling_mirnet import BORDER_MARGIN


@dataclass
class ImagePairs:
    """Decoded pairs: `lows[i]` and `highs[i]` are (3, H, W) uint8 tensors of the same size, `names[i]` a string."""

    lows: list[torch.Tensor] = field(default_factory=list)
    highs: list[torch.Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices) -> "ImagePairs":
        indices = list(indices)
        return ImagePairs([self.lows[i] for i in indices], [self.highs[i] for i in indices], [self.names[i] for i in indices])


def image_to_uint8_tensor(image) -> torch.Tensor:
    """A PIL image (any mode) -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def decode_pairs(rows, limit: int | None = None) -> ImagePairs:
    """Decode every `low`/`high` image of `rows` (a datasets.Dataset or any sequence of such dicts) once.

    Raises ValueError naming the pair when its two images differ in size.
    """
    pairs = ImagePairs()
    count = len(rows) if limit is None else min(limit, len(rows))
    for i in range(count):
        row = rows[i]
        low, high = image_to_uint8_tensor(row["low"]), image_to_uint8_tensor(row["high"])
        name = str(row.get("name", i)) if hasattr(row, "get") else str(i)
        if low.shape != high.shape:
            raise ValueError(f"{name}: low {tuple(low.shape[1:])} and high {tuple(high.shape[1:])} differ in size")
        pairs.lows.append(low)
        pairs.highs.append(high)
        pairs.names.append(name)
    return pairs


def image_scores(image: torch.Tensor, reference: torch.Tensor, compute_ssim: bool = True) -> dict[str, torch.Tensor]:
    """Per-image PSNR, GT-mean PSNR and SSIM of (B, 3, H, W) float images in [0, 1] (already 8-bit values)."""
    scores = {"psnr": psnr_batch(image, reference), "psnr_gt_mean": psnr_batch(gt_mean_scale(image, reference), reference)}
    if compute_ssim:
        scores["ssim"] = ssim_batch(image, reference)
    return scores


@torch.no_grad()
def score_pairs(
    model,
    pairs: ImagePairs,
    batch_size: int = 4,
    autocast_dtype: torch.dtype | None = None,
    compute_ssim: bool = True,
    loss_type: str | None = None,
    progress=None,
    tile_size: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    on_output=None,
    margin: int = BORDER_MARGIN,
    exposure: str = "predicted",
    exposure_offset: float = 0.0,
) -> dict[str, list[float]]:
    """Run `model` on every low image of `pairs` (whole, batched by size) and score the 8-bit output.

    Returns per-image lists, in the order of `pairs`: `psnr`, `psnr_gt_mean` (output scaled to the reference's mean
    gray level first), `ssim` (when `compute_ssim`), `loss` (the model's training loss on the float output, when
    `loss_type` is given). `progress(done, total)` is called after each batch; `on_output(index, image)` receives
    each 8-bit output as a (3, H, W) uint8 CPU tensor. With `tile_size`, images larger than a tile run in overlapping
    tiles; `margin` is the mirrored margin of `MIRNetModel.enhance`, which runs every image (0: the network's
    output on the photo as it is). The model's train/eval mode is kept.

    Exposure-conditioned models render `exposure`: "predicted" (the model's own default, what users get) or
    "reference" (each pair's true exposure, the honest counterpart of GT-mean figures), plus `exposure_offset` stops;
    the results then also hold `exposure` (the stops asked for), `reference_exposure` and `rendered_exposure` (the
    8-bit output's exposure relative to the input).
    """
    if exposure not in ("predicted", "reference"):
        raise ValueError(f"exposure must be 'predicted' or 'reference', got {exposure!r}")
    conditioned = model.config.exposure_conditioning
    param = next(model.parameters())
    device = param.device
    divisor = model.config.size_divisor
    was_training = model.training
    model.eval()
    by_size = defaultdict(list)
    for i, low in enumerate(pairs.lows):
        by_size[tuple(low.shape)].append(i)
    results = {key: [0.0] * len(pairs) for key in ("psnr", "psnr_gt_mean")}
    if compute_ssim:
        results["ssim"] = [0.0] * len(pairs)
    if loss_type:
        results["loss"] = [0.0] * len(pairs)
    if conditioned:
        for key in ("exposure", "reference_exposure", "rendered_exposure"):
            results[key] = [0.0] * len(pairs)
    done = 0
    try:
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                low = torch.stack([pairs.lows[i] for i in chunk]).to(device, non_blocking=True)
                high = torch.stack([pairs.highs[i] for i in chunk]).to(device, non_blocking=True).float().div_(255)
                height, width = low.shape[-2:]
                low = low.to(param.dtype).div_(255)
                (pixel_values,) = pad_to_multiple([low], divisor)
                stops = None
                if conditioned:
                    reference_stops = exposure_stops(high, low)
                    stops = reference_stops if exposure == "reference" else model.predict_exposure(pixel_values)
                    stops = stops + exposure_offset
                with autocast_context(device, autocast_dtype):
                    output = model.enhance(pixel_values, stops, tile_size=tile_size, tile_overlap=tile_overlap, margin=margin)
                output = output[..., :height, :width].float()
                image = quantize(output)
                scores = image_scores(image, high, compute_ssim)
                if conditioned:
                    scores.update(exposure=stops, reference_exposure=reference_stops, rendered_exposure=exposure_stops(image, low))
                if loss_type:
                    scores["loss"] = torch.stack([enhancement_loss(o[None], h[None], loss_type, model.config.charbonnier_eps) for o, h in zip(output, high)])
                if on_output is not None:
                    for i, pixels in zip(chunk, to_uint8(image).cpu()):
                        on_output(i, pixels)
                for key, values in scores.items():
                    for i, value in zip(chunk, values.tolist()):
                        results[key][i] = value
                done += len(chunk)
                if progress is not None:
                    progress(done, len(pairs))
    finally:
        model.train(was_training)
    return results


def score_images(outputs: torch.Tensor, references: torch.Tensor, compute_ssim: bool = True) -> dict[str, list[float]]:
    """The metrics of `score_pairs` for ready 8-bit images: (B, 3, H, W) uint8 outputs against their references."""
    scores = image_scores(outputs.float().div(255), references.float().div(255), compute_ssim)
    return {key: values.tolist() for key, values in scores.items()}


__all__ = ["ImagePairs", "score_images", "image_scores", "decode_pairs", "score_pairs", "image_to_uint8_tensor"]
