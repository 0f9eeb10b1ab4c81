"""Write a folder that the Hub (or a local path) serves: weights, config, processor, code and pipeline."""

import os

from .configuration_mirnet import MIRNetConfig
from .image_processing_mirnet import MIRNetImageProcessor
from .modeling_mirnet import MIRNetModel
from .pipeline_mirnet import MIRNetImageToImagePipeline


def save_for_hub(model: MIRNetModel, folder: str | os.PathLike, image_processor: MIRNetImageProcessor | None = None):
    """Save `model` so that AutoModel, AutoImageProcessor and `pipeline("image-to-image", ...)` load `folder`.

    Writes model.safetensors, config.json (with auto_map and custom_pipelines), preprocessor_config.json and the
    code files, so `trust_remote_code=True` works where this package is not installed. Returns the folder.
    """
    folder = os.fspath(folder)
    image_processor = image_processor or MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    # save_pretrained merges the other auto_map entries into this one (AutoConfig, AutoModel)
    model.config.auto_map = {"AutoModelForImageToImage": "modeling_mirnet.MIRNetModel"}
    pipe = MIRNetImageToImagePipeline(model=model, image_processor=image_processor, device=model.device)
    pipe.save_pretrained(folder)
    return folder


__all__ = ["save_for_hub", "MIRNetConfig"]
