"""Image-quality metrics and classical baselines shared by evaluation, training and the Space.

Conventions (stated so numbers can be compared with published tables):
- images are RGB, 8-bit (the model output is quantized to uint8 first, as a saved PNG would be);
- PSNR uses data range 1 on [0, 1] images (= data range 255 on uint8), per image, then averaged;
- SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, 'valid' filtering, computed per
  RGB channel and averaged (the BasicSR / Retinexformer convention);
- `psnr_inflated` reproduces the seed study's bug (max_val=255 on [0, 1] images): exactly 20*log10(255) = 48.13 dB
  above the true PSNR. It is reported only so readers can compare with that study.
"""

import math

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

INFLATION_DB = 20 * math.log10(255.0)  # 48.13 dB


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


def psnr_inflated(output, reference) -> float:
    """The seed study's PSNR: max_val=255 applied to [0, 1] images (true PSNR + 48.13 dB). For comparison only."""
    return psnr(output, reference) + INFLATION_DB


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


def autocontrast(image: PIL.Image.Image) -> PIL.Image.Image:
    """The seed study's baseline: PIL.ImageOps.autocontrast with default settings."""
    return PIL.ImageOps.autocontrast(image.convert("RGB"))


def equalize(image: PIL.Image.Image) -> PIL.Image.Image:
    """Histogram equalisation per channel (PIL.ImageOps.equalize)."""
    return PIL.ImageOps.equalize(image.convert("RGB"))


def gamma_curve(image: PIL.Image.Image, gamma: float = 0.4) -> PIL.Image.Image:
    """Brighten with out = in ** gamma on [0, 1] values (gamma < 1 brightens)."""
    lut = [round(255 * (i / 255) ** gamma) for i in range(256)]
    return image.convert("RGB").point(lut * 3)


BASELINES = {"input": lambda image: image.convert("RGB"), "autocontrast": autocontrast, "equalize": equalize, "gamma_0.4": gamma_curve}

__all__ = ["psnr", "psnr_inflated", "ssim", "autocontrast", "equalize", "gamma_curve", "BASELINES", "INFLATION_DB"]
