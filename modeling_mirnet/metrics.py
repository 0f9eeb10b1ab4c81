"""Image-quality metrics and classical baselines shared by evaluation, training and the Space.

Conventions (stated so numbers can be compared with published tables):
- images are RGB, 8-bit (the model output is quantized to uint8 first, as a saved PNG would be);
- PSNR uses data range 1 on [0, 1] images (= data range 255 on uint8), per image, then averaged;
- SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, 'valid' filtering, computed per
  RGB channel and averaged (the BasicSR / Retinexformer convention);
- `psnr_inflated` reproduces the study's bug (max_val=255 on [0, 1] images): exactly 20*log10(255) = 48.13 dB
  above the true PSNR. It is reported only so readers can compare with that study.
"""

import math

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

from .image_processing_mirnet import to_uint8

INFLATION_DB = 20 * math.log10(255.0)  # 48.13 dB

REC601_GRAY = (0.299, 0.587, 0.114)  # the weights of cv2's BGR2GRAY, used by the GT-mean convention (KinD, LLFlow)


def mean_gray(images: torch.Tensor) -> torch.Tensor:
    """Mean Rec.601 gray level of each (batch, 3, height, width) image: its exposure, (batch,)."""
    weights = images.new_tensor(REC601_GRAY, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1).flatten(1).mean(1)


def as_unit_array(image) -> np.ndarray:
    """PIL image or uint8 HxWx3 array -> float64 HxWx3 array in [0, 1]."""
    if isinstance(image, PIL.Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    return array.astype(np.float64)


def _check_pair(output: np.ndarray, reference: np.ndarray) -> None:
    if output.shape != reference.shape:
        raise ValueError(f"output {output.shape} and reference {reference.shape} differ in size")


def psnr(output, reference) -> float:
    """PSNR in dB, data range 1 ([0, 1] RGB; 8-bit inputs are divided by 255). Identical images give inf."""
    x, y = as_unit_array(output), as_unit_array(reference)
    _check_pair(x, y)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def study_convention(psnr_db: float) -> float:
    """A true PSNR as the study's code printed it (max_val=255 on [0, 1] images: + 48.13 dB). For comparison only."""
    return psnr_db + INFLATION_DB


def psnr_inflated(output, reference) -> float:
    """The study's PSNR of `output` against `reference` (`study_convention` of the true PSNR)."""
    return study_convention(psnr(output, reference))


def _gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(output, reference, window_size: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM over RGB channels (Gaussian 11x11, sigma 1.5, valid filtering, data range 1)."""
    x, y = as_unit_array(output), as_unit_array(reference)
    _check_pair(x, y)
    if min(x.shape[:2]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size}, got {x.shape[1]}x{x.shape[0]}")
    c1, c2 = 0.01**2, 0.03**2
    g = _gaussian_window_1d(window_size, sigma)
    rows, cols = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)  # the 2-D Gaussian is separable: two 1-D passes
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[:, None]  # channels as a batch
    ty = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))[:, None]

    def filt(t):
        return F.conv2d(F.conv2d(t, rows), cols)

    mu_x, mu_y = filt(tx), filt(ty)
    var_x = filt(tx * tx) - mu_x**2
    var_y = filt(ty * ty) - mu_y**2
    cov = filt(tx * ty) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


# ------------------------------------------------------------------------------------------------------------------
# The same metrics on batches of tensors, on the model's device (training validation and evaluate.py use these):
# float32, agreeing with the float64 functions above to 1e-3 dB (PSNR) and 1e-5 (SSIM) on 8-bit images (tested).
# ------------------------------------------------------------------------------------------------------------------


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Model output (B, 3, H, W), any float dtype -> the float32 values an 8-bit PNG of it holds, in [0, 1]."""
    return to_uint8(images).float().div(255)


def psnr_batch(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (data range 1) of (B, 3, H, W) tensors in [0, 1]; identical images give inf."""
    if output.shape != reference.shape:
        raise ValueError(f"output {tuple(output.shape)} and reference {tuple(reference.shape)} differ in size")
    mse = (output.float() - reference.float()).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def gt_mean_scale(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`output` rescaled to its reference's mean gray level and clipped to [0, 1] (the 'GT-mean' scoring of KinD,
    LLFlow, GSAD: it removes the global exposure error and shows what is left)."""
    ratio = mean_gray(reference) / mean_gray(output).clamp_min(1e-6)
    return (output.float() * ratio.view(-1, 1, 1, 1)).clamp(0, 1)


def grid_score(images: torch.Tensor, period: int = 4, window: int = 2) -> torch.Tensor:
    """How strongly a regular `period`-pixel grid shows in each (B, 3, H, W) image, (B,): in the 2-D amplitude spectrum
    of its gray image, the largest peak at that period (horizontal, vertical or diagonal) over the mean amplitude of
    its neighbours (the (2 window + 1)^2 square around it, without its centre). About 1 for natural images (a JPEG's
    8-pixel blocks raise it a little), far above for a drawn grid."""
    gray = (images.float() * images.new_tensor(REC601_GRAY, dtype=torch.float32).view(1, 3, 1, 1)).sum(1)
    gray = gray - gray.mean(dim=(1, 2), keepdim=True)
    spectrum = torch.fft.fft2(gray).abs()
    height, width = spectrum.shape[-2:]
    fy, fx = round(height / period), round(width / period)
    offsets = [(dy, dx) for dy in range(-window, window + 1) for dx in range(-window, window + 1) if (dy, dx) != (0, 0)]
    scores = []
    for py, px in ((fy, 0), (0, fx), (fy, fx), (fy, -fx)):
        peak = spectrum[:, py % height, px % width]
        ring = torch.stack([spectrum[:, (py + dy) % height, (px + dx) % width] for dy, dx in offsets], dim=1)
        scores.append(peak / ring.mean(dim=1).clamp_min(1e-12))
    return torch.stack(scores, dim=1).max(dim=1).values


def ssim_batch(output: torch.Tensor, reference: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (mean over RGB channels) of (B, 3, H, W) tensors in [0, 1], as `ssim` above computes it."""
    if output.shape != reference.shape:
        raise ValueError(f"output {tuple(output.shape)} and reference {tuple(reference.shape)} differ in size")
    if min(output.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size}, got {tuple(output.shape[-2:])}")
    batch, channels = output.shape[:2]
    x = output.float().reshape(batch * channels, 1, *output.shape[-2:])
    y = reference.float().reshape(batch * channels, 1, *output.shape[-2:])
    # Centre both images on the reference's mean before filtering: the statistics are shift-invariant, and float32
    # loses far less in E[x^2] - E[x]^2 around zero than around 0.5.
    shift = y.mean(dim=(2, 3), keepdim=True)
    x, y = x - shift, y - shift
    g = _gaussian_window_1d(window_size, sigma).to(device=x.device, dtype=torch.float32)
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=0).view(1, 5 * batch * channels, *x.shape[-2:])
    n = maps.shape[1]
    # the five maps of every channel as the channels of one depthwise convolution (10-20x faster on CPU than a
    # batch of single-channel convolutions), the separable Gaussian as two 1-D passes
    stats = F.conv2d(F.conv2d(maps, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n), g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
    mu_x, mu_y, xx, yy, xy = stats.view(5, batch * channels, 1, *stats.shape[-2:])
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    # the SSIM terms use the unshifted means: mu + shift
    mx, my = mu_x + shift, mu_y + shift
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx.square() + my.square() + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1).view(batch, channels).mean(1)


def autocontrast(image: PIL.Image.Image) -> PIL.Image.Image:
    """The study's baseline: PIL.ImageOps.autocontrast with default settings."""
    return PIL.ImageOps.autocontrast(image.convert("RGB"))


def equalize(image: PIL.Image.Image) -> PIL.Image.Image:
    """Histogram equalisation per channel (PIL.ImageOps.equalize)."""
    return PIL.ImageOps.equalize(image.convert("RGB"))


def gamma_curve(image: PIL.Image.Image, gamma: float = 0.4) -> PIL.Image.Image:
    """Brighten with out = in ** gamma on [0, 1] values (gamma < 1 brightens)."""
    lut = [round(255 * (i / 255) ** gamma) for i in range(256)]
    return image.convert("RGB").point(lut * 3)


BASELINES = {"input": lambda image: image.convert("RGB"), "autocontrast": autocontrast, "equalize": equalize, "gamma_0.4": gamma_curve}

# Above this mean gray level (0-1) a photo is called well exposed, by the CLI and the Space alike. LoL's dark inputs
# average 0.02-0.10 and its references 0.24-0.58; 0.35 (90 of 255) is the middle of the references' range: a photo
# brighter than most of the model's targets.
WELL_EXPOSED_MEAN_GRAY = 0.35


def well_exposed_note(pixels: np.ndarray) -> str | None:
    """For a photo as the model receives it (HxWx3 float in [0, 1]: `to_float_rgb` of the file), the sentence the CLI
    and the Space say when it is already well exposed ("already well exposed (mean gray 150 of 255): MIRNet is made
    for dark photos"), else None."""
    gray = float(mean_gray(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]))
    if gray <= WELL_EXPOSED_MEAN_GRAY:
        return None
    return f"already well exposed (mean gray {255 * gray:.0f} of 255): MIRNet is made for dark photos"

__all__ = ["psnr", "psnr_inflated", "study_convention", "ssim", "psnr_batch", "ssim_batch", "gt_mean_scale", "mean_gray", "grid_score", "quantize", "autocontrast", "equalize", "gamma_curve", "BASELINES", "INFLATION_DB",
           "WELL_EXPOSED_MEAN_GRAY", "well_exposed_note"]
