"""The "image-to-image" pipeline for MIRNet (transformers 5 removed its built-in one), saved beside checkpoints.

A saved folder names this class in `config.custom_pipelines`, so `pipeline("image-to-image", model=folder,
trust_remote_code=True)` builds it from the code saved there. With this package installed, `mirnet_pipeline(...)`
builds it directly; importing the package registers nothing in transformers' global pipeline registry.
"""

import os

from transformers import AutoModel, Pipeline

from .image_processing_mirnet import MIRNetImageProcessor
from .inference import DEFAULT_TILE_OVERLAP, Enhancer, load_mirnet, pick_device


class MIRNetImageToImagePipeline(Pipeline):
    """Low-light image in (PIL image, array or file path), enhanced PIL image of the same size out.

    Call (or construction) parameters: `tile_size` (and `tile_overlap`) run large photos in overlapping tiles to bound
    memory; `precision` ("fp32", the default; "bf16"; "auto": bf16 on a GPU or a CPU with native bf16) is the
    autocast precision of the forward pass, the weights stay float32; `on_tile(done, total)` reports progress;
    `brightness` (stops, default 0: the model's own exposure; highlights roll off rather than clip) and `strength`
    (1: the enhanced image, 0: the input) adjust the result (`modeling_mirnet.exposure.apply_controls`). Models trained
    with exposure conditioning also take an absolute `exposure` (stops relative to the input; default: the model's
    prediction; 0 keeps the input's brightness), and render `exposure + brightness` themselves.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, tile_size=None, tile_overlap=None, precision=None, on_tile=None, brightness=None,
                             strength=None, exposure=None, **kwargs):
        forward = {"tile_size": tile_size, "tile_overlap": tile_overlap, "precision": precision, "on_tile": on_tile,
                   "brightness": brightness, "strength": strength, "exposure": exposure}
        return {}, {key: value for key, value in forward.items() if value is not None}, {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enhancer = Enhancer(self.model, self.image_processor)  # preprocessing, forward and postprocessing; stateless

    def preprocess(self, image):
        return self.enhancer.preprocess(image)

    def _forward(self, model_inputs, tile_size=None, tile_overlap=DEFAULT_TILE_OVERLAP, precision="fp32", on_tile=None,
                 brightness=0.0, strength=1.0, exposure=None):
        reconstruction = self.enhancer.forward(model_inputs["pixel_values"], tile_size, tile_overlap, on_tile, brightness,
                                               strength, precision=precision, exposure=exposure)
        return {"reconstruction": reconstruction, "original_sizes": model_inputs["original_sizes"]}

    def postprocess(self, model_outputs):
        return self.enhancer.postprocess(model_outputs["reconstruction"], model_outputs["original_sizes"])[0]


# What PIPELINE_REGISTRY.register_pipeline would record, kept on the class alone (no global registration): it makes
# `save_pretrained` write `custom_pipelines` into config.json and copy this file (and what it imports) beside the
# weights.
MIRNetImageToImagePipeline._registered_impl = {"image-to-image": {"impl": MIRNetImageToImagePipeline, "pt": (AutoModel,)}}


def mirnet_pipeline(model, image_processor=None, device=None, **kwargs) -> MIRNetImageToImagePipeline:
    """The MIRNet pipeline from a model folder, a Hub id or a loaded MIRNetModel, with this package installed (no
    `trust_remote_code` needed). `device`: "auto", "cpu", "cuda", ... (default: where the model is; "auto" for a
    path); other keywords (`precision`, `tile_size`, ...) become the pipeline's defaults."""
    if isinstance(model, (str, os.PathLike)):
        model, loaded_processor = load_mirnet(model, device=device or "auto")
        image_processor = image_processor or loaded_processor
    elif device is not None:
        model = model.to(pick_device(device))
    image_processor = image_processor or MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    return MIRNetImageToImagePipeline(model=model, image_processor=image_processor, device=model.device, **kwargs)


__all__ = ["MIRNetImageToImagePipeline", "mirnet_pipeline"]
