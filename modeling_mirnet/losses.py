"""Training losses of MIRNet: the paper's Charbonnier, L1, RMSE and the GT-mean loss (Liao et al., ICCV 2025).

The model computes none of them (its forward is the network alone); `train/train.py` and the evaluation's validation
loss call `enhancement_loss` on its output.
"""

import torch

from .configuration_mirnet import LOSS_TYPES
from .metrics import mean_gray


def enhancement_loss(prediction: torch.Tensor, target: torch.Tensor, loss_type: str = "charbonnier", eps: float = 1e-3):
    """Training loss between an enhanced image and its reference: Charbonnier (the paper's), L1, RMSE or GT-mean."""
    if loss_type == "gt_mean":
        return gt_mean_loss(prediction, target, eps)
    diff = prediction.float() - target.float()
    if loss_type == "charbonnier":
        return charbonnier(diff, eps).mean()
    if loss_type == "l1":
        return diff.abs().mean()
    if loss_type == "rmse":
        return torch.sqrt((diff * diff).mean())
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")


def charbonnier(diff: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt(diff^2 + eps^2), per element: a smooth L1."""
    return torch.sqrt(diff * diff + eps * eps)


def gt_mean_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, sigma: float = 0.1) -> torch.Tensor:
    """GT-mean loss (Liao et al., ICCV 2025) over Charbonnier: per image, a blend of the loss on the output and on the
    output rescaled to the reference's mean gray level. The blend weight is the Jensen-Shannon divergence between
    Gaussians N(mean, (sigma * mean)^2) of the two mean gray levels (no gradient, clipped to [0, 1]): an output whose
    exposure is far off is trained on its exposure, one whose exposure is close on its structure."""
    prediction, target = prediction.float(), target.float()
    mean_out, mean_ref = mean_gray(prediction).clamp_min(1e-4), mean_gray(target).clamp_min(1e-4)
    weight = exposure_divergence(mean_out.detach(), mean_ref, sigma).clamp(0, 1).view(-1, 1, 1, 1)
    rescaled = (prediction * (mean_ref / mean_out).view(-1, 1, 1, 1)).clamp(0, 1)
    per_pixel = weight * charbonnier(prediction - target, eps) + (1 - weight) * charbonnier(rescaled - target, eps)
    return per_pixel.mean()


def exposure_divergence(mean_a: torch.Tensor, mean_b: torch.Tensor, sigma: float) -> torch.Tensor:
    """Jensen-Shannon divergence between N(a, (sigma a)^2) and N(b, (sigma b)^2), each against their moment-matched
    midpoint: 0 for equal exposures, growing with their ratio."""
    sd_a, sd_b = sigma * mean_a, sigma * mean_b
    mid, sd_mid = (mean_a + mean_b) / 2, torch.sqrt((sd_a**2 + sd_b**2) / 2)

    def kl(mu, sd):  # KL(N(mu, sd^2) || N(mid, sd_mid^2))
        return torch.log(sd_mid / sd) + (sd**2 + (mu - mid) ** 2) / (2 * sd_mid**2) - 0.5

    return (kl(mean_a, sd_a) + kl(mean_b, sd_b)) / 2


__all__ = ["enhancement_loss", "gt_mean_loss", "exposure_divergence"]
