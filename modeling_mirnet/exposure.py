"""Exposure in linear light: sRGB decoding/encoding, a plain gain in stops (training's exposure jitter), the exposure
of an image pair in stops and the highlight-preserving curve that renders a photo at a requested exposure (the input
of exposure-conditioned models), and the brightness and strength controls users set on top of the model's output."""

import math

import torch

MAX_BRIGHTNESS_STOPS = 3.0
MAX_EXPOSURE_STOPS = 10.0  # the widest exposure an exposure-conditioned model is asked for (LoL: 5.1 +- 1.1 stops)
REC709_LUMA = (0.2126, 0.7152, 0.0722)  # Y of linear-light sRGB primaries


def srgb_to_linear(images: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return torch.where(images <= 0.04045, images / 12.92, ((images + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    linear = linear.clamp(0, 1)
    encoded = torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
    return encoded.clamp(0, 1)


def linear_mean_luminance(linear: torch.Tensor) -> torch.Tensor:
    """Mean luminance Y (Rec. 709 weights) of each (B, 3, H, W) linear-light image: (B,)."""
    weights = torch.tensor(REC709_LUMA, dtype=linear.dtype, device=linear.device).view(1, 3, 1, 1)
    return (linear * weights).sum(1).flatten(1).mean(1)


def mean_luminance(images: torch.Tensor) -> torch.Tensor:
    """Mean linear-light luminance Y of each (B, 3, H, W) sRGB image in [0, 1]: (B,) float32."""
    return linear_mean_luminance(srgb_to_linear(images.float().clamp(0, 1)))


def exposure_stops(output: torch.Tensor, reference: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """The exposure of `output` relative to `reference` in stops, log2(mean Y of output / mean Y of reference): (B,).
    For a training pair (input, target) it is the exposure the model is asked to render, log2(target / input)."""
    return torch.log2(mean_luminance(output).clamp_min(floor) / mean_luminance(reference).clamp_min(floor))


def rolloff(linear: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """The highlight-preserving gain on linear light: g x / (1 + (g - 1) x) for g > 1 (shadows get the full gain,
    white stays white), the plain gain g x for g <= 1 (darkening cannot clip). `gain` broadcasts against `linear`."""
    return gain * linear / (1 + (gain - 1).clamp_min(0) * linear)


def curve_stops(images: torch.Tensor, exposure: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """log2 of the `rolloff` gain that brings each sRGB image to its requested `exposure` (stops; (B,)): the mean
    luminance of the result is 2**exposure times the input's. Darkening is exact (the gain is 2**exposure); brightening
    is solved by bisection (the roll-off gives back less than the gain), up to the curve's limit, where every pixel
    that is not black has gone white. (B,) float32."""
    exposure = exposure.float().reshape(-1)
    linear = srgb_to_linear(images.float().clamp(0, 1))
    target = linear_mean_luminance(linear) * torch.exp2(exposure)
    low, high = exposure.clone(), exposure + 16
    for _ in range(iterations):
        middle = (low + high) / 2
        rendered = linear_mean_luminance(rolloff(linear, torch.exp2(middle).view(-1, 1, 1, 1)))
        short = rendered < target
        low, high = torch.where(short, middle, low), torch.where(short, high, middle)
    return torch.where(exposure <= 0, exposure, (low + high) / 2)


def render_exposure(images: torch.Tensor, gain_stops: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB images through `rolloff` with the gain 2**gain_stops ((B,), from `curve_stops`), per channel
    in linear light: the input of an exposure-conditioned network. Float32, in [0, 1]."""
    gain = torch.exp2(gain_stops.float()).view(-1, 1, 1, 1)
    return linear_to_srgb(rolloff(srgb_to_linear(images.float().clamp(0, 1)), gain))


def check_exposure(exposure, batch_size: int) -> torch.Tensor:
    """`exposure` (a number or a (B,) tensor of stops) as a (B,) float32 tensor; ValueError naming the problem when
    it is not finite, outside +-MAX_EXPOSURE_STOPS, or of another batch size."""
    values = torch.as_tensor(exposure, dtype=torch.float32)
    if values.ndim == 0:
        values = values.expand(batch_size)
    if values.ndim != 1 or values.shape[0] != batch_size:
        raise ValueError(f"exposure must be a number or one value per image ({batch_size}), got shape {tuple(values.shape)}")
    if not torch.isfinite(values).all() or values.abs().max() > MAX_EXPOSURE_STOPS:
        raise ValueError(f"exposure must be a number of stops between -{MAX_EXPOSURE_STOPS:g} and {MAX_EXPOSURE_STOPS:g}, "
                         f"got {values.tolist()}")
    return values


def scale_exposure(images: torch.Tensor, stops: torch.Tensor | float) -> torch.Tensor:
    """(B, 3, H, W) sRGB images in [0, 1], each multiplied by 2**stops in linear light and clipped, as a longer or
    shorter exposure of the same scene would record it; `stops` is a number or a (B,) tensor."""
    stops = torch.as_tensor(stops, dtype=torch.float32, device=images.device).reshape(-1, 1, 1, 1)
    return linear_to_srgb(srgb_to_linear(images.float()) * torch.exp2(stops)).to(images.dtype)


def adjust_brightness(images: torch.Tensor, stops: float) -> torch.Tensor:
    """Shift the exposure of sRGB images in [0, 1] by `stops` in linear light. Brightening (stops > 0) rolls the
    highlights off instead of clipping them: x -> g x / (1 + (g - 1) x) with g = 2**stops, per channel (shadows get the
    full gain g, white stays white). Darkening (stops < 0) is the plain gain g x, which cannot clip. 0 stops returns
    the images unchanged; the result is monotone in `stops`."""
    if stops == 0:
        return images
    if stops < 0:
        return scale_exposure(images.clamp(0, 1), stops)
    gain = 2.0**stops
    linear = srgb_to_linear(images.float().clamp(0, 1))
    return linear_to_srgb(gain * linear / (1 + (gain - 1) * linear)).to(images.dtype)


def check_controls(brightness: float, strength: float) -> None:
    """ValueError naming the control when `brightness` (stops) or `strength` (0-1) is out of range."""
    if not (isinstance(brightness, (int, float)) and math.isfinite(brightness) and abs(brightness) <= MAX_BRIGHTNESS_STOPS):
        raise ValueError(f"brightness must be a number of stops between -{MAX_BRIGHTNESS_STOPS:g} and "
                         f"{MAX_BRIGHTNESS_STOPS:g}, got {brightness!r}")
    if not (isinstance(strength, (int, float)) and 0 <= strength <= 1):
        raise ValueError(f"strength must be between 0 (the input) and 1 (the enhanced image), got {strength!r}")


def apply_controls(enhanced: torch.Tensor, original: torch.Tensor, brightness: float = 0.0, strength: float = 1.0) -> torch.Tensor:
    """The user's controls on top of the model: blend the enhanced image with the input (`strength`: 1 = the
    model's result, 0 = the input), then shift its brightness (`adjust_brightness`, in stops). The defaults return
    `enhanced` unchanged. Both are (B, 3, H, W) in [0, 1] on one device; the controls are checked by the caller
    (`check_controls`, before the network runs)."""
    if strength != 1:
        enhanced = original.to(enhanced.dtype) + strength * (enhanced - original.to(enhanced.dtype))
    return adjust_brightness(enhanced, brightness)


__all__ = ["MAX_BRIGHTNESS_STOPS", "MAX_EXPOSURE_STOPS", "adjust_brightness", "apply_controls", "check_controls",
           "check_exposure", "curve_stops", "exposure_stops", "linear_to_srgb", "mean_luminance", "render_exposure",
           "rolloff", "scale_exposure", "srgb_to_linear"]
