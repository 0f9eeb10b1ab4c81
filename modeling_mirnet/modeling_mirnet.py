"""PyTorch MIRNet (Zamir et al., ECCV 2020), faithful to the official v1 code (`swz30/MIRNet`).

Top-down, as in the paper's figure: MIRNet = conv -> RRGs -> conv, plus a global residual to the input image;
RRG = MRBs -> conv, plus a residual; MRB = parallel streams at full, 1/2, 1/4 resolution, each refined by DAUs,
exchanging information through SKFF and residual down/up-sampling.

Differences from the official code, none of which change the function it computes:
- the official network shares one PReLU module among every DAU (a Python default-argument quirk); here each DAU
  owns its PReLU. The converter copies the shared slope into each, so converted checkpoints are identical.
- the anti-aliasing blur filter is a constant computed in `BlurPool.forward`, not a saved buffer.
- work the official code does twice is done once: the first mesh column reuses the downsampled streams of the
  first column, and the bilinear branch of up-sampling applies its 1x1 convolution before interpolating
  (the two commute), a quarter of the pixels.
- for speed, with the same arithmetic up to float rounding (see benchmarks/NOTES.md): feature maps are channels_last
  on CPU, the DAU's 1x1 fusion applies the spatial gate after the convolution instead of concatenating gated copies,
  and sums are accumulated in place into freshly computed tensors; under autocast the anti-aliasing blur pads and
  filters in the autocast dtype (autocast would pad in float32 and cast back: the same values, two more passes).

Beyond the official code: `MIRNetModel.enhance` runs large photos in tiles whose global pools are the whole photo's
(`tiling.py`: `tiled_forward`, `SharedStatistics`), so tiles do not each get their own exposure, and first mirrors a
margin around the photo (`BORDER_MARGIN`), so its own edges are not where the zero-padded convolutions end.

Exposure as an input (`config.exposure_conditioning`, off by default): how bright a photo should come out is not
something its pixels determine (LoL's references are one answer of many), so the network is told. The input is first
brought to the requested exposure by a highlight-preserving curve (`exposure.render_exposure`), the network sees that
and the requested stops (a constant channel, as FFDNet gives its noise level) and predicts the residual to the curve's
output; `ExposureHead` predicts a default exposure from a thumbnail of the whole photo. The alternative path
(`config.exposure_path = "film"`) gives the network the raw input and scales and shifts its features by the stops
(`ExposureFiLM`), the residual added to the input as in the official model.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageSuperResolutionOutput

from .configuration_mirnet import MIRNetConfig
from .exposure import MAX_EXPOSURE_STOPS, check_exposure, curve_stops, mean_luminance, render_exposure
from .tiling import DEFAULT_TILE_OVERLAP, SharedStatistics, global_average_pool, tiled_forward

# Pixels mirrored around a photo by `MIRNetModel.enhance` (and cropped off after). At a photo's own bottom and right
# edges the stride-2 transposed convolutions lose a tap, so the outermost 4 pixels there come out in a 4-pixel pattern;
# with the edges moved inside, they do not (docs/training-mirnet-lol.md).
BORDER_MARGIN = 8
# The requested exposure enters an exposure-conditioned network as a constant input channel of stops / this.
EXPOSURE_INPUT_SCALE = 8.0
# log2 of a typical well-exposed mean luminance (LoL's references: mean gray 121 of 255): where the head starts.
TYPICAL_LOG2_LUMINANCE = -2.4


# ----------------------------------------------------------------------------------------------------------------
# The network: conv -> RRGs -> conv, plus the input image
# ----------------------------------------------------------------------------------------------------------------
class MIRNetPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by MIRNet models."""

    config_class = MIRNetConfig
    config: MIRNetConfig
    # MIRNetModel has no head and is its own base model (`model.base_model is model`): no prefix to add or strip
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    # the residual sums are added in place (`out.add_(x)`), so both operands must sit on one device: never split an RRG
    _no_split_modules = ["RRG"]
    # the layer that turns pixels into features, what `get_input_embeddings()` returns: `enable_input_require_grads()`
    # hooks it so that adapters (PEFT) with reentrant gradient checkpointing still get gradients
    _input_embed_layer = "conv_in"

    def _init_weights(self, module):
        # PyTorch's default initialisation, as the official model is trained with (not transformers' N(0, 0.02))
        if module is getattr(getattr(self, "exposure_head", None), "out", None):
            # the exposure head starts as the constant predictor: every photo to a typical brightness
            init.zeros_(module.weight)
            init.constant_(module.bias, TYPICAL_LOG2_LUMINANCE)
        elif module is getattr(getattr(self, "film", None), "out", None):
            # FiLM starts as the identity: every scale 1, every shift 0
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * module.weight[0][0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)


class MIRNetModel(MIRNetPreTrainedModel):
    """MIRNet: conv -> RRGs -> conv predicts a residual that is added to the input image (values in [0, 1])."""

    def __init__(self, config: MIRNetConfig):
        super().__init__(config)
        k = config.kernel_size
        conditioned = config.exposure_conditioning
        film = conditioned and config.exposure_path == "film"
        # the curve path adds the requested stops as a fourth, constant input channel
        self.conv_in = conv(config.num_channels + int(conditioned and not film), config.num_features, k, config.bias)
        self.rrgs = nn.ModuleList([RRG(config) for _ in range(config.num_rrg)])
        self.conv_out = conv(config.num_features, config.num_channels, k, config.bias)
        self.film = ExposureFiLM(config) if film else None
        self.exposure_head = ExposureHead(config) if conditioned else None
        # Feature maps in channels_last (NHWC) memory format: the same arithmetic, but oneDNN runs the
        # convolutions (the transposed ones above all) much faster on CPU than in NCHW. None: on CPU only.
        self.channels_last: bool | None = None
        self.post_init()

    def remove_checkerboard_(self) -> None:
        """Make every up-sampler checkerboard-free (`checkerboard_free`); training keeps it so after each step."""
        for module in self.modules():
            if isinstance(module, ResidualUpSample):
                module.remove_checkerboard_()

    def feature_memory_format(self, pixel_values: torch.Tensor) -> torch.memory_format:
        """The memory format of the feature maps for an input on `pixel_values.device` (see `channels_last`)."""
        use = self.channels_last if self.channels_last is not None else pixel_values.device.type == "cpu"
        return torch.channels_last if use else torch.contiguous_format

    def check_pixel_values(self, pixel_values) -> None:
        """Raise a ValueError that names the problem when `pixel_values` cannot go through the network."""
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        if pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels, the model expects {self.config.num_channels}"
            )
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be floating point in [0, 1], got dtype {pixel_values.dtype}")
        divisor = self.config.size_divisor
        height, width = pixel_values.shape[-2:]
        if height % divisor or width % divisor or height < 2 * divisor or width < 2 * divisor:
            raise ValueError(
                f"MIRNet needs height and width that are multiples of {divisor} and at least {2 * divisor}, "
                f"got {height}x{width}; MIRNetImageProcessor reflect-pads images to fit and crops them back"
            )

    def forward(
        self,
        pixel_values: torch.Tensor,
        exposure: torch.Tensor | float | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        shared_statistics: SharedStatistics | None = None,
    ) -> ImageSuperResolutionOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Low-light images in [0, 1]; height and width multiples of `config.size_divisor`.
        exposure (`torch.FloatTensor` of shape `(batch_size,)` or a number, *optional*):
            Exposure-conditioned models only, and required there: the exposure to render, in stops
            (`log2(mean Y of the output / mean Y of the input)`); `predict_exposure` gives a default.
        output_hidden_states (`bool`, *optional*):
            Also return the features after `conv_in` and after each RRG (defaults to `config.output_hidden_states`).
        return_dict (`bool`, *optional*):
            Return an `ImageSuperResolutionOutput` rather than a tuple (defaults to `config.return_dict`).
        shared_statistics (`SharedStatistics`, *optional*):
            Record the global average pools into it, or (after `.replay()`) use the recorded ones: how tiles of one
            photo share its statistics (`tiled_forward`).
        """
        self.check_pixel_values(pixel_values)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        base, inputs, modulation = self.condition(pixel_values, exposure, shared_statistics)
        features = self.conv_in(inputs.contiguous(memory_format=self.feature_memory_format(pixel_values)))
        if modulation is not None:
            features = modulation.apply(features, 0)
        hidden_states = (features,) if output_hidden_states else None
        for index, rrg in enumerate(self.rrgs, start=1):
            features = rrg(features, shared_statistics)
            if modulation is not None:
                features = modulation.apply(features, index)
            if output_hidden_states:
                hidden_states += (features,)
        residual = self.conv_out(features)
        # `.to` is a no-op unless a device_map put conv_out on another device than the input
        reconstruction = (base.to(residual.device) + residual).contiguous()
        if not return_dict:
            return tuple(v for v in (reconstruction, hidden_states) if v is not None)
        return ImageSuperResolutionOutput(reconstruction=reconstruction, hidden_states=hidden_states)

    def condition(self, pixel_values: torch.Tensor, exposure, shared_statistics: SharedStatistics | None = None):
        """(the image the residual is added to, the network's input, the FiLM modulation or None). Without exposure
        conditioning both images are `pixel_values`. On the curve path the image is `pixel_values` brought to
        `exposure` by the highlight-preserving curve (its gain solved on these pixels, or the whole photo's gain that
        tiles share through `shared_statistics`), and the input adds the requested stops as a constant channel. On
        the FiLM path both images are `pixel_values` and the stops modulate the features."""
        if not self.config.exposure_conditioning:
            if exposure is not None:
                raise ValueError("this model has no exposure input (config.exposure_conditioning is False); "
                                 "adjust its output's brightness instead")
            return pixel_values, pixel_values, None
        if exposure is None:
            raise ValueError("this model is exposure-conditioned: pass `exposure` (stops, one per image), for example "
                             "model.predict_exposure(pixel_values), or call model.enhance(pixel_values)")
        batch, _, height, width = pixel_values.shape
        exposure = check_exposure(exposure, batch).to(pixel_values.device)
        if self.film is not None:
            return pixel_values, pixel_values, self.film(exposure)
        with torch.no_grad():
            gain = shared_statistics.curve_stops if shared_statistics is not None else None
            if gain is None:
                gain = self.curve_gain(pixel_values, exposure)
            base = render_exposure(pixel_values, gain).to(pixel_values.dtype)
        level = (exposure / EXPOSURE_INPUT_SCALE).to(base.dtype).view(-1, 1, 1, 1).expand(batch, 1, height, width)
        return base, torch.cat([base, level], dim=1), None

    def curve_gain(self, pixel_values: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor | None:
        """The gain (stops, (batch,)) of the curve that brings `pixel_values` to `exposure`, which tiles of one photo
        share (`tiled_forward`); None for models that do not render through the curve."""
        if not self.config.exposure_conditioning or self.film is not None:
            return None
        return curve_stops(pixel_values, exposure)

    def predict_exposure(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The exposure (stops, (batch,)) the head would render each whole photo at: its default for `enhance`."""
        if self.exposure_head is None:
            raise ValueError("this model has no exposure head (config.exposure_conditioning is False)")
        param = next(self.exposure_head.parameters())
        thumbnails = exposure_thumbnail(pixel_values.to(param.device), self.config.exposure_thumbnail_size)
        return self.exposure_head(thumbnails).float()

    @torch.inference_mode()
    def enhance(
        self, pixel_values: torch.Tensor, exposure: torch.Tensor | float | None = None, tile_size: int | None = None,
        tile_overlap: int = DEFAULT_TILE_OVERLAP, on_tile=None, shared_statistics: bool = True, margin: int = BORDER_MARGIN,
    ) -> torch.Tensor:
        """Enhanced images for `pixel_values` (as from MIRNetImageProcessor), whole or in overlapping tiles.

        With `tile_size`, the image is processed in `tile_size` squares that overlap by `tile_overlap` pixels and
        are blended with linear ramps, so memory stays bounded for large photos. With `shared_statistics` (default)
        every tile uses the global statistics of the whole image, taken from a downscaled copy that fits in one tile,
        instead of its own (`SharedStatistics`): one more tile's work, and tiles no longer disagree on exposure.
        Output is not clamped. `on_tile(done, total)` is called after each tile (once, with (1, 1), for a whole
        image): progress that belongs to this call alone. The photo is mirrored by `margin` pixels on every side first
        (fewer for a photo that small; 0: none) and the output cropped back to its size.

        Exposure-conditioned models render `exposure` (stops: a number or one per image; `None`: `predict_exposure` on
        the whole photo); whole photos and tiles get the same curve, solved once on the whole photo.
        """
        param = next(self.parameters())
        pixel_values = pixel_values.to(device=param.device, dtype=param.dtype)
        if self.config.exposure_conditioning:
            exposure = self.predict_exposure(pixel_values) if exposure is None else check_exposure(exposure, len(pixel_values))
            exposure = exposure.to(param.device)
        elif exposure is not None:
            self.condition(pixel_values, exposure)  # the ValueError that says this model takes no exposure
        height, width = pixel_values.shape[-2:]
        margin = mirrored_margin(height, width, margin, self.config.size_divisor)
        if margin:
            pixel_values = F.pad(pixel_values, (margin, margin, margin, margin), mode="reflect")
        padded_height, padded_width = pixel_values.shape[-2:]
        if tile_size is None or (padded_height <= tile_size and padded_width <= tile_size):
            reconstruction = self(pixel_values, exposure=exposure, return_dict=True).reconstruction
            if on_tile is not None:
                on_tile(1, 1)
        else:
            reconstruction = tiled_forward(self, pixel_values, tile_size, tile_overlap, on_tile, shared_statistics, exposure)
        if margin:
            reconstruction = reconstruction[..., margin : margin + height, margin : margin + width].contiguous()
        return reconstruction


def exposure_thumbnail(pixel_values: torch.Tensor, size: int) -> torch.Tensor:
    """The whole photo as the exposure head sees it: a `size` x `size` antialiased float32 thumbnail in [0, 1]."""
    thumbnail = F.interpolate(pixel_values.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return thumbnail.clamp(0, 1)


class ExposureHead(nn.Module):
    """Exposure head: from a thumbnail, the log2 mean luminance the photo should have; returns it as stops to render.

    Three stride-2 convolutions pooled (mean and max) and the thumbnail's own log2 mean luminance go through a small
    MLP; it starts as the constant predictor (every photo to `TYPICAL_LOG2_LUMINANCE`), and its input brightness lets
    it learn to leave well-exposed photos at 0 stops. It never darkens: a photo already brighter than the brightness it
    predicts is kept at its own exposure (0 stops), as low-light training teaches only brightening; users may ask for less.
    """

    def __init__(self, config: MIRNetConfig, width: int = 16):
        super().__init__()
        layers, channels = [], config.num_channels
        for out_channels in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1), nn.PReLU()]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(2 * channels + 1, 2 * width), nn.PReLU())
        self.out = nn.Linear(2 * width, 1)

    def forward(self, thumbnails: torch.Tensor) -> torch.Tensor:
        features = self.features(thumbnails)
        log_luminance = torch.log2(mean_luminance(thumbnails).clamp_min(1e-6))
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3)), log_luminance[:, None].to(features.dtype)], 1)
        target = self.out(self.mlp(pooled)).squeeze(1).float()
        return (target - log_luminance).clamp(0, MAX_EXPOSURE_STOPS)


class ExposureFiLM(nn.Module):
    """FiLM from the requested exposure: per-channel scales and shifts for the features after `conv_in` and each RRG."""

    def __init__(self, config: MIRNetConfig, width: int = 64):
        super().__init__()
        self.num_features, self.num_layers = config.num_features, config.num_rrg + 1
        self.mlp = nn.Sequential(nn.Linear(1, width), nn.PReLU(), nn.Linear(width, width), nn.PReLU())
        self.out = nn.Linear(width, 2 * self.num_layers * self.num_features)

    def forward(self, exposure: torch.Tensor) -> "FiLMModulation":
        param = self.out.weight
        params = self.out(self.mlp((exposure / EXPOSURE_INPUT_SCALE).to(param)[:, None]))
        return FiLMModulation(params.view(-1, self.num_layers, 2, self.num_features))


class FiLMModulation:
    """The scales and shifts of one batch: `apply(features, layer)` returns features * (1 + scale) + shift."""

    def __init__(self, params: torch.Tensor):
        self.params = params  # (batch, layers, 2, channels)

    def apply(self, features: torch.Tensor, layer: int) -> torch.Tensor:
        scale, shift = self.params[:, layer, 0, :, None, None], self.params[:, layer, 1, :, None, None]
        return torch.addcmul(shift.to(features.dtype), features, 1 + scale.to(features.dtype))


def mirrored_margin(height: int, width: int, margin: int, size_divisor: int) -> int:
    """The margin `enhance` mirrors around a height x width input: `margin`, at most one pixel less than the input's
    smaller side (a reflection needs that much photo), rounded down so the padded size stays a multiple of
    `size_divisor`."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels, got {margin}")
    step = max(1, size_divisor // 2)
    return min(margin, height - 1, width - 1) // step * step


# ----------------------------------------------------------------------------------------------------------------
# Recursive residual group and multi-scale residual block
# ----------------------------------------------------------------------------------------------------------------
class RRG(GradientCheckpointingLayer):
    """Recursive Residual Group: MRBs followed by a 3x3 conv, with a residual connection.

    The unit of gradient checkpointing (`model.activation_checkpointing_enable()`, or `gradient_checkpointing_enable()`
    on older transformers): in training only each RRG's input is kept, and its inside is recomputed in the backward
    pass. Also the unit a `device_map` never splits (see `_no_split_modules`).
    """

    def __init__(self, config: MIRNetConfig):
        super().__init__()
        self.mrbs = nn.ModuleList([MRB(config) for _ in range(config.num_mrb)])
        self.conv = conv(config.num_features, config.num_features, 3, bias=False)

    def forward(self, x: torch.Tensor, shared: SharedStatistics | None = None) -> torch.Tensor:
        h = x
        for mrb in self.mrbs:
            h = mrb(h, shared)
        return self.conv(h).add_(x)


class MRB(nn.Module):
    """Multi-scale Residual Block: parallel streams refined by DAUs, exchanging information through SKFF."""

    def __init__(self, config: MIRNetConfig):
        super().__init__()
        self.num_streams, self.num_columns = config.num_streams, config.num_dau_columns
        channels = config.stream_channels
        distinct_columns = 1 if config.share_dau_columns else config.num_dau_columns
        # daus[column][stream]; with share_dau_columns every column uses column 0 (as the official code does)
        self.daus = nn.ModuleList(
            [nn.ModuleList([DAU(c, config) for c in channels]) for _ in range(distinct_columns)]
        )
        self.skff = nn.ModuleList([SKFF(c, config.num_streams, config.skff_reduction) for c in channels])
        levels = range(config.num_streams)
        self.down = nn.ModuleDict(
            {f"{s}_to_{t}": resampler(channels, s, t) for s in levels for t in levels if s < t}
        )
        self.up = nn.ModuleDict(
            {f"{s}_to_{t}": resampler(channels, s, t) for s in levels for t in levels if s > t}
        )
        # the final fusion brings every stream back to full resolution with resamplers of its own
        self.last_up = nn.ModuleDict({f"{s}": resampler(channels, s, 0) for s in range(1, config.num_streams)})
        # like the official code, `config.bias` reaches only this convolution and the model's conv_in/conv_out
        self.conv_out = nn.Conv2d(channels[0], channels[0], 3, padding=1, bias=config.bias)

    def dau(self, column: int, stream: int) -> "DAU":
        return self.daus[column if len(self.daus) > 1 else 0][stream]

    def resample(self, x: torch.Tensor, source: int, target: int) -> torch.Tensor:
        if source == target:
            return x
        table = self.down if source < target else self.up
        return table[f"{source}_to_{target}"](x)

    def forward(self, x: torch.Tensor, shared: SharedStatistics | None = None) -> torch.Tensor:
        # Column 0: each stream is the previous one downsampled, then refined by its DAU.
        downsampled = {}  # (source, target) -> tensor, reused by the first mesh column
        streams = [self.dau(0, 0)(x, shared)]
        for level in range(1, self.num_streams):
            downsampled[(level - 1, level)] = self.resample(streams[-1], level - 1, level)
            streams.append(self.dau(0, level)(downsampled[(level - 1, level)], shared))
        # Columns 1..num_columns-1: every stream fuses all streams resampled to its scale (SKFF), then its DAU.
        for column in range(1, self.num_columns):
            fused = []
            for target in range(self.num_streams):
                inputs = [
                    downsampled.get((source, target)) if column == 1 and (source, target) in downsampled
                    else self.resample(streams[source], source, target)
                    for source in range(self.num_streams)
                ]
                fused.append(self.skff[target](inputs, shared))
            streams = [self.dau(column, level)(fused[level], shared) for level in range(self.num_streams)]
        # Back to full resolution; the official code reuses the first stream's SKFF for this fusion.
        full = [streams[0]] + [self.last_up[f"{level}"](streams[level]) for level in range(1, self.num_streams)]
        return self.conv_out(self.skff[0](full, shared)).add_(x)


def resampler(channels: list[int], source: int, target: int) -> nn.Sequential:
    """Residual down- or up-sampling steps that take stream `source` to the resolution and width of `target`."""
    step = 1 if target > source else -1
    block = ResidualDownSample if step == 1 else ResidualUpSample
    return nn.Sequential(*[block(channels[s], channels[s + step]) for s in range(source, target, step)])


# ----------------------------------------------------------------------------------------------------------------
# Inside an MRB: fusion (SKFF) and refinement (DAU)
# ----------------------------------------------------------------------------------------------------------------
class SKFF(nn.Module):
    """Selective Kernel Feature Fusion: a softmax across streams, per channel, weights the sum of the streams."""

    def __init__(self, channels: int, num_streams: int, reduction: int = 8):
        super().__init__()
        squeezed = max(int(channels / reduction), 4)
        self.conv_du = nn.Sequential(nn.Conv2d(channels, squeezed, 1, bias=False), nn.PReLU())
        self.fcs = nn.ModuleList([nn.Conv2d(squeezed, channels, 1, bias=False) for _ in range(num_streams)])

    def forward(self, streams: list[torch.Tensor], shared: SharedStatistics | None = None) -> torch.Tensor:
        pooled = sum(global_average_pool(s, shared) for s in streams)  # GAP of the sum = sum of the GAPs
        squeezed = self.conv_du(pooled)
        weights = torch.stack([fc(squeezed) for fc in self.fcs]).softmax(dim=0)
        fused = streams[0] * weights[0]
        for stream, weight in zip(streams[1:], weights[1:]):
            fused.addcmul_(stream, weight)  # in place: one pass per stream, no temporaries
        return fused


class DAU(nn.Module):
    """Dual Attention Unit: conv-PReLU-conv features, spatial and channel attention in parallel, 1x1 fusion, residual."""

    def __init__(self, channels: int, config: MIRNetConfig):
        super().__init__()
        k = config.kernel_size  # no biases here: the official DAU never passes `bias` on
        self.body = nn.Sequential(conv(channels, channels, k), nn.PReLU(), conv(channels, channels, k))
        self.spatial_attention = SpatialAttention(config.spatial_attention_kernel_size)
        self.channel_attention = ChannelAttention(channels, config.reduction)
        self.conv1x1 = GatedFusion(2 * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor, shared: SharedStatistics | None = None) -> torch.Tensor:
        res = self.body(x)
        return self.conv1x1(res, self.spatial_attention(res), self.channel_attention(res, shared), x)


class SpatialAttention(nn.Module):
    """Spatial attention: a sigmoid map from the channel-wise max and mean, through one conv."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The (batch, 1, height, width) attention map that multiplies `x` (in the DAU's fusion)."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class ChannelAttention(nn.Module):
    """Channel attention (squeeze-and-excitation): GAP -> 1x1 (C/r) -> ReLU -> 1x1 (C) -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, shared: SharedStatistics | None = None) -> torch.Tensor:
        """The (batch, channels, 1, 1) attention weights that multiply `x` (in the DAU's fusion)."""
        return self.conv_du(global_average_pool(x, shared))


class GatedFusion(nn.Conv2d):
    """The DAU's 1x1 fusion convolution (2C -> C) of [features * spatial gate, features * channel gate].

    A Conv2d (same `weight`, same init, same checkpoint keys) whose forward skips the concatenation: the per-pixel
    spatial gate commutes with a 1x1 convolution, so it multiplies that half's output instead of its input. The weight
    is only read inside this module's own forward, so offloading hooks (accelerate) load it when it is needed.
    """

    def forward(self, features, spatial_gate, channel_gate, residual):
        w_spatial, w_channel = self.weight.chunk(2, dim=1)
        fused = F.conv2d(features * channel_gate, w_channel, self.bias)
        return fused.add_(residual).addcmul_(spatial_gate, F.conv2d(features, w_spatial))  # in place on a fresh output


# ----------------------------------------------------------------------------------------------------------------
# Between streams: residual down- and up-sampling
# ----------------------------------------------------------------------------------------------------------------
class ResidualDownSample(nn.Module):
    """Residual down-sampling: (1x1-PReLU-3x3-PReLU-blurpool-1x1) + (blurpool-1x1), halving the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            nn.PReLU(),
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            nn.PReLU(),
            BlurPool(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )
        self.bot = nn.Sequential(BlurPool(), nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x).add_(self.bot(x))


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling (Zhang, ICML 2019): reflect pad, [1,2,1]x[1,2,1]/16 depthwise blur."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if not (torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)):
            return self.blur(x)
        # autocast runs reflect padding in float32: two full-size casts that change no value. Cast once to the dtype
        # the blur convolution would get anyway, and pad and blur in it.
        with torch.autocast(device, enabled=False):
            return self.blur(x.to(torch.get_autocast_dtype(device)))

    @staticmethod
    def blur(x: torch.Tensor) -> torch.Tensor:
        taps = x.new_tensor([1.0, 2.0, 1.0])
        kernel = (torch.outer(taps, taps) / 16).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, stride=2, groups=x.shape[1])


class ResidualUpSample(nn.Module):
    """Residual up-sampling: (1x1-PReLU-transposed conv-PReLU-1x1) + (bilinear-1x1), doubling the resolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            nn.PReLU(),
            nn.ConvTranspose2d(in_channels, in_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.PReLU(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )
        self.bot = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upsample, project = self.bot
        # bilinear interpolation and a 1x1 conv commute: project at low resolution, then interpolate
        return self.top(x).add_(upsample(project(x)))

    @torch.no_grad()
    def remove_checkerboard_(self) -> None:
        """Project the transposed conv onto the kernels that turn a flat input into a flat output (no grid)."""
        transposed = self.top[2]
        transposed.weight.copy_(checkerboard_free(transposed.weight))


def checkerboard_free(weight: torch.Tensor) -> torch.Tensor:
    """The nearest (least-squares) 3x3 stride-2 transposed-conv kernels whose four output phases sum alike.

    With stride 2 and padding 1, an output pixel at (even, even) gets the kernel's centre tap, (even, odd) and
    (odd, even) its two edge taps, (odd, odd) its four corners. A flat input comes out as a 2-pixel pattern (a 4-pixel
    grid once the 1/4-resolution stream reaches full resolution) unless the four sums are equal; shifting each phase's
    taps alike, by the least squares amount, makes them equal and leaves the layer otherwise as close as possible.
    """
    centre, edge = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    masks = torch.stack([torch.outer(a, b) for a in (centre, edge) for b in (centre, edge)]).to(weight)  # (4, 3, 3)
    taps = masks.sum(dim=(1, 2))  # 1, 2, 2, 4
    sums = torch.einsum("iohw,phw->iop", weight, masks)
    common = (sums / taps).sum(-1, keepdim=True) / taps.reciprocal().sum()
    return weight + torch.einsum("iop,phw->iohw", (common - sums) / taps, masks)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------
def conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = False) -> nn.Conv2d:
    """A 'same'-padded convolution, as used throughout MIRNet."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


__all__ = [
    "ExposureHead",
    "MIRNetModel",
    "MIRNetPreTrainedModel",
    "SKFF",
    "DAU",
    "MRB",
    "RRG",
]
