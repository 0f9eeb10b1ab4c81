"""Exposure in linear light: sRGB decoding/encoding, a plain gain in stops (training's exposure jitter) and the
brightness and strength controls users set on top of the model's output."""

import math

import torch

MAX_BRIGHTNESS_STOPS = 3.0


def srgb_to_linear(images: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return torch.where(images <= 0.04045, images / 12.92, ((images + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    linear = linear.clamp(0, 1)
    encoded = torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
    return encoded.clamp(0, 1)


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
    `enhanced` unchanged. Both are (B, 3, H, W) in [0, 1] on one device."""
    check_controls(brightness, strength)
    if strength != 1:
        enhanced = original.to(enhanced.dtype) + strength * (enhanced - original.to(enhanced.dtype))
    return adjust_brightness(enhanced, brightness)


__all__ = ["MAX_BRIGHTNESS_STOPS", "adjust_brightness", "apply_controls", "check_controls", "linear_to_srgb",
           "scale_exposure", "srgb_to_linear"]
