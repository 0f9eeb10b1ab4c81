"""Large photos in tiles that share the whole photo's global statistics.

MIRNet's only global operations are the average pools of SKFF and channel attention: they carry the photo's exposure.
A tile run on its own pools over itself and gets its own exposure; `tiled_forward` first runs the whole photo
downscaled into one tile, records those pools (`SharedStatistics`), and replays them in every tile, so memory follows
the tile and the tiles agree with each other and with the whole-image result.
"""

import torch
import torch.nn.functional as F

DEFAULT_TILE_OVERLAP = 32  # pixels shared by neighbouring tiles, blended with linear ramps



class SharedStatistics:
    """The global average pools (SKFF, channel attention) of one forward pass, recorded to be replayed in others.

    These pools are the only places where a pixel's output depends on the whole image: they carry its exposure.
    `tiled_forward` records them on a downscaled copy of the whole image (`model(x, shared_statistics=s)`) and
    replays them in every tile (`model(tile, shared_statistics=s.replay())`), so all tiles are enhanced with the
    photo's statistics instead of each with its own. Passed as an argument, so calls in other threads are untouched
    and torch.compile traces it without graph breaks.
    """

    def __init__(self, curve_stops: torch.Tensor | None = None):
        self.pooled: list[torch.Tensor] = []
        self.position: int | None = None  # None: recording; an index: replaying
        # exposure-conditioned models: the gain of the exposure curve, solved once on the whole photo
        self.curve_stops = curve_stops

    def replay(self) -> "SharedStatistics":
        """Start a forward pass that uses the recorded means, in the order they were recorded."""
        if not self.pooled:
            raise RuntimeError("SharedStatistics.replay() before anything was recorded")
        self.position = 0
        return self

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.position is None:
            self.pooled.append(x.mean(dim=(2, 3), keepdim=True))
            return self.pooled[-1]
        if self.position >= len(self.pooled) or self.pooled[self.position].shape != (*x.shape[:2], 1, 1):
            raise RuntimeError("SharedStatistics: the replayed forward pass does not match the recorded one "
                               "(another model or batch size)")
        self.position += 1
        return self.pooled[self.position - 1].to(x.dtype)


def global_average_pool(x: torch.Tensor, shared: SharedStatistics | None = None) -> torch.Tensor:
    """Mean over height and width, (batch, channels, 1, 1); with `shared`, recorded into it or replayed from it."""
    return x.mean(dim=(2, 3), keepdim=True) if shared is None else shared.pool(x)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool, device, dtype) -> torch.Tensor:
    """1-D blending weights of a tile: linear ramps over `overlap` pixels on sides that touch another tile."""
    weights = torch.ones(length, device=device, dtype=dtype)
    ramp = torch.arange(1, overlap + 1, device=device, dtype=dtype) / (overlap + 1)
    if overlap and not at_start:
        weights[:overlap] = ramp
    if overlap and not at_end:
        weights[-overlap:] = ramp.flip(0)
    return weights


def thumbnail(pixel_values: torch.Tensor, max_side: int, divisor: int) -> torch.Tensor:
    """`pixel_values` downscaled (antialiased) to fit in `max_side` x `max_side`, sides multiples of `divisor`."""
    height, width = pixel_values.shape[-2:]
    scale = min(1.0, max_side / max(height, width))
    size = [max(2 * divisor, int(side * scale) // divisor * divisor) for side in (height, width)]
    if size == [height, width]:
        return pixel_values
    return F.interpolate(pixel_values, size=size, mode="bilinear", antialias=True, align_corners=False)


def check_tile_settings(tile_size: int, tile_overlap: int, divisor: int) -> None:
    """ValueError unless tiles of `tile_size` overlapping by `tile_overlap` suit a model with this `size_divisor`."""
    if tile_size % divisor or tile_size < 2 * divisor:
        raise ValueError(f"tile_size must be a multiple of {divisor} and at least {2 * divisor}, got {tile_size}")
    if not 0 <= tile_overlap < tile_size // 2 or tile_overlap % divisor:
        raise ValueError(
            f"tile_overlap must be a multiple of {divisor} in [0, tile_size/2), got {tile_overlap} for tile {tile_size}"
        )


def tiled_forward(
    model, pixel_values: torch.Tensor, tile_size: int, tile_overlap: int, on_tile=None,
    shared_statistics: bool = True, exposure: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run `model` over overlapping tiles of `pixel_values` and blend them; memory scales with the tile, not the image.

    `shared_statistics`: first record the global pools on the whole image downscaled to fit in one tile, then replay
    them in every tile (`SharedStatistics`), with the exposure curve's gain solved on the whole photo (`exposure`, for
    exposure-conditioned models). `on_tile(done, total)`, when given, is called after each tile.
    """
    divisor = model.config.size_divisor
    check_tile_settings(tile_size, tile_overlap, divisor)
    height, width = pixel_values.shape[-2:]
    tile_h, tile_w = min(tile_size, height), min(tile_size, width)
    rows, cols = tile_starts(height, tile_h, tile_h - tile_overlap), tile_starts(width, tile_w, tile_w - tile_overlap)
    output = torch.zeros_like(pixel_values, dtype=torch.float32)
    total = torch.zeros((1, 1, height, width), device=pixel_values.device, dtype=torch.float32)
    shared = None
    if shared_statistics:
        shared = SharedStatistics(None if exposure is None else model.curve_gain(pixel_values, exposure))
        model(thumbnail(pixel_values, tile_size, divisor), exposure=exposure, return_dict=True, shared_statistics=shared)
    done = 0
    for top in rows:
        wy = blend_ramp(tile_h, tile_overlap, top == 0, top + tile_h == height, output.device, torch.float32)
        for left in cols:
            wx = blend_ramp(tile_w, tile_overlap, left == 0, left + tile_w == width, output.device, torch.float32)
            weight = wy[:, None] * wx[None, :]
            tile = pixel_values[:, :, top : top + tile_h, left : left + tile_w]
            replay = shared.replay() if shared is not None else None
            result = model(tile, exposure=exposure, return_dict=True, shared_statistics=replay).reconstruction.float()
            output[:, :, top : top + tile_h, left : left + tile_w] += result * weight
            total[:, :, top : top + tile_h, left : left + tile_w] += weight
            done += 1
            if on_tile is not None:
                on_tile(done, len(rows) * len(cols))
    return (output / total).to(pixel_values.dtype)


__all__ = ["SharedStatistics", "check_tile_settings", "global_average_pool", "thumbnail", "tile_starts", "tiled_forward"]
