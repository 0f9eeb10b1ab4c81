"""MIRNet model configuration."""

from transformers import PretrainedConfig

LOSS_TYPES = ("charbonnier", "l1", "rmse", "gt_mean")
EXPOSURE_PATHS = ("curve", "film")  # how a conditioned network is told the exposure (see `exposure_path`)
# The official code's names for two fields; they are not image sizes, so MIRNetConfig does not take them.
OFFICIAL_NAMES = {"height": "num_streams", "width": "num_dau_columns"}


class MIRNetConfig(PretrainedConfig):
    r"""
    Configuration of a [`MIRNetModel`] (Zamir et al., ECCV 2020, "Learning Enriched Features for Real Image
    Restoration and Enhancement"). The defaults are the official MIRNet v1 (`swz30/MIRNet`): 3 RRGs of 2 MRBs,
    64 features, 3 streams, 2 DAU columns, about 31.8M parameters.

    Args:
        num_channels (`int`, defaults to 3): channels of the input and output image.
        num_features (`int`, defaults to 64): channels of the full-resolution stream (official `n_feat`).
        num_rrg (`int`, defaults to 3): recursive residual groups (official `n_RRG`).
        num_mrb (`int`, defaults to 2): multi-scale residual blocks per RRG (official `n_MSRB`).
        num_streams (`int`, defaults to 3): parallel streams per MRB, at full, 1/2, 1/4, ... resolution
            (official `height`).
        num_dau_columns (`int`, defaults to 2): DAU columns per MRB; columns after the first fuse all streams with
            SKFF (official `width`).
        channel_factor (`float`, defaults to 2): channel multiplier from one stream to the next (official `stride`).
        reduction (`int`, defaults to 8): channel reduction of the channel attention in every DAU.
        skff_reduction (`int`, defaults to 8): channel reduction in SKFF (the squeezed size is at least 4).
        kernel_size (`int`, defaults to 3): kernel size of the input, output and DAU convolutions.
        spatial_attention_kernel_size (`int`, defaults to 5): kernel of the spatial-attention convolution.
        bias (`bool`, defaults to `False`): bias on the model's input/output convolutions and each MRB's output
            convolution, as the official `bias` argument does (attention, SKFF and resampling convolutions never
            have one, there as here). The released official models use `False`.
        share_dau_columns (`bool`, defaults to `True`): the official code builds each stream's DAUs as
            `[DAU(...)] * width`, so every column of an MRB reuses one DAU per stream. `True` reproduces that
            (31.79M parameters at the defaults); `False` gives each column its own DAU (42.24M).
        loss_type (`str`, defaults to `"charbonnier"`): the training loss the model was trained with
            (`losses.enhancement_loss`: `"charbonnier"`, `"l1"`, `"rmse"` or `"gt_mean"`); the model computes none.
        charbonnier_eps (`float`, defaults to 1e-3): epsilon of the Charbonnier loss.
        exposure_conditioning (`bool`, defaults to `False`): the network takes a target exposure per image (stops,
            `log2(mean Y of the output / mean Y of the input)`): the input is first brought to that exposure by the
            highlight-preserving curve (`exposure.render_exposure`), the network restores what the curve cannot, and a
            small head (`predict_exposure`) predicts a default exposure from a thumbnail. `False` is the official
            architecture, unchanged.
        exposure_path (`str`, defaults to `"curve"`): how the requested exposure enters a conditioned network.
            `"curve"`: as above (the curve's output plus the stops as a constant channel; the residual is added to the
            curve's output). `"film"`: the raw input, with every feature map after `conv_in` and after each RRG scaled
            and shifted per channel by an MLP of the stops (FiLM); the residual is added to the input.
        exposure_thumbnail_size (`int`, defaults to 64): side of the square thumbnail the exposure head sees.

    The official code calls `num_streams` and `num_dau_columns` `height` and `width` (they are not image sizes);
    given those names, MIRNetConfig says which to use (`convert_official_checkpoint.py` translates the official
    arguments).
    """

    model_type = "mirnet"

    def __init__(
        self,
        num_channels: int = 3,
        num_features: int = 64,
        num_rrg: int = 3,
        num_mrb: int = 2,
        num_streams: int = 3,
        num_dau_columns: int = 2,
        channel_factor: float = 2,
        reduction: int = 8,
        skff_reduction: int = 8,
        kernel_size: int = 3,
        spatial_attention_kernel_size: int = 5,
        bias: bool = False,
        share_dau_columns: bool = True,
        loss_type: str = "charbonnier",
        charbonnier_eps: float = 1e-3,
        exposure_conditioning: bool = False,
        exposure_path: str = "curve",
        exposure_thumbnail_size: int = 64,
        **kwargs,
    ):
        for official, name in OFFICIAL_NAMES.items():
            if official in kwargs:
                raise ValueError(f"MIRNetConfig: `{official}` is the official code's name; MIRNetConfig calls it `{name}`")
        for name, value in {
            "num_channels": num_channels,
            "num_features": num_features,
            "num_rrg": num_rrg,
            "num_mrb": num_mrb,
            "num_streams": num_streams,
            "num_dau_columns": num_dau_columns,
            "reduction": reduction,
            "skff_reduction": skff_reduction,
        }.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MIRNetConfig: `{name}` must be a positive integer, got {value!r}")
        for name, value in {"kernel_size": kernel_size, "spatial_attention_kernel_size": spatial_attention_kernel_size}.items():
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ValueError(f"MIRNetConfig: `{name}` must be a positive odd integer, got {value!r}")
        if num_features < reduction:
            raise ValueError(
                f"MIRNetConfig: `num_features` ({num_features}) must be at least `reduction` ({reduction}), "
                "or the channel attention would have no channels"
            )
        if not channel_factor >= 1:
            raise ValueError(f"MIRNetConfig: `channel_factor` must be >= 1, got {channel_factor!r}")
        if exposure_path not in EXPOSURE_PATHS:
            raise ValueError(f"MIRNetConfig: `exposure_path` must be one of {EXPOSURE_PATHS}, got {exposure_path!r}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"MIRNetConfig: `loss_type` must be one of {LOSS_TYPES}, got {loss_type!r}")
        self.num_channels = num_channels
        self.num_features = num_features
        self.num_rrg = num_rrg
        self.num_mrb = num_mrb
        self.num_streams = num_streams
        self.num_dau_columns = num_dau_columns
        self.channel_factor = channel_factor
        self.reduction = reduction
        self.skff_reduction = skff_reduction
        self.kernel_size = kernel_size
        self.spatial_attention_kernel_size = spatial_attention_kernel_size
        self.bias = bias
        self.share_dau_columns = share_dau_columns
        self.loss_type = loss_type
        self.charbonnier_eps = charbonnier_eps
        self.exposure_conditioning = exposure_conditioning
        self.exposure_path = exposure_path
        self.exposure_thumbnail_size = exposure_thumbnail_size
        super().__init__(**kwargs)

    @property
    def stream_channels(self) -> list[int]:
        """Channels of each stream, full resolution first (64, 128, 256 at the defaults)."""
        return [int(self.num_features * self.channel_factor**level) for level in range(self.num_streams)]

    @property
    def size_divisor(self) -> int:
        """Input height and width must be multiples of this (each stream halves the resolution)."""
        return 2 ** (self.num_streams - 1)


__all__ = ["MIRNetConfig", "LOSS_TYPES", "EXPOSURE_PATHS"]
