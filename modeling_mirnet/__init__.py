"""MIRNet low-light image enhancement as a native transformers model.

Importing this package registers MIRNet with AutoConfig, AutoModel, AutoModelForImageToImage,
AutoImageProcessor and the "image-to-image" pipeline task, and marks the classes so that
`save_pretrained` writes the code beside the weights (`trust_remote_code=True` loading).
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageToImage,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_mirnet import MIRNetConfig
from .image_processing_mirnet import ImageLoadError, MIRNetImageProcessor, load_image, to_float_rgb
from .modeling_mirnet import MIRNetModel, MIRNetPreTrainedModel, enhancement_loss, tiled_forward
from .pipeline_mirnet import MIRNetImageToImagePipeline

__version__ = "0.1.0"

AutoConfig.register("mirnet", MIRNetConfig, exist_ok=True)
AutoModel.register(MIRNetConfig, MIRNetModel, exist_ok=True)
AutoModelForImageToImage.register(MIRNetConfig, MIRNetModel, exist_ok=True)
AutoImageProcessor.register(MIRNetConfig, image_processor_classes={"pil": MIRNetImageProcessor}, exist_ok=True)
PIPELINE_REGISTRY.register_pipeline("image-to-image", pipeline_class=MIRNetImageToImagePipeline, pt_model=AutoModel)

MIRNetConfig.register_for_auto_class()
MIRNetModel.register_for_auto_class("AutoModel")
MIRNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "MIRNetConfig",
    "MIRNetModel",
    "MIRNetPreTrainedModel",
    "MIRNetImageProcessor",
    "MIRNetImageToImagePipeline",
    "ImageLoadError",
    "load_image",
    "to_float_rgb",
    "enhancement_loss",
    "tiled_forward",
]
