"""MIRNet low-light image enhancement as a native transformers model.

Importing this package registers MIRNet with AutoConfig, AutoModel, AutoModelForImageToImage and
AutoImageProcessor, and marks the classes so that `save_pretrained` writes the code beside the weights
(`trust_remote_code=True` loading). It registers no pipeline task globally: a saved folder names its pipeline in
`config.custom_pipelines` (`pipeline("image-to-image", model=folder, trust_remote_code=True)`), and
`mirnet_pipeline(folder_or_model)` builds the same pipeline from this package.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageToImage,
)

from .configuration_mirnet import MIRNetConfig
from .image_processing_mirnet import ImageLoadError, MIRNetImageProcessor, load_image, to_float_rgb
from .inference import Enhancer, ModelLoadError, OutOfMemory, enhance_image, load_mirnet, mirnet_pipeline
from .losses import enhancement_loss
from .modeling_mirnet import MIRNetModel, MIRNetPreTrainedModel
from .tiling import tiled_forward
from .pipeline_mirnet import MIRNetImageToImagePipeline

__version__ = "0.1.0"

AutoConfig.register("mirnet", MIRNetConfig, exist_ok=True)
AutoModel.register(MIRNetConfig, MIRNetModel, exist_ok=True)
AutoModelForImageToImage.register(MIRNetConfig, MIRNetModel, exist_ok=True)
AutoImageProcessor.register(MIRNetConfig, image_processor_classes={"pil": MIRNetImageProcessor}, exist_ok=True)

MIRNetConfig.register_for_auto_class()
MIRNetModel.register_for_auto_class("AutoModel")
MIRNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "MIRNetConfig",
    "MIRNetModel",
    "MIRNetPreTrainedModel",
    "MIRNetImageProcessor",
    "MIRNetImageToImagePipeline",
    "Enhancer",
    "ImageLoadError",
    "ModelLoadError",
    "OutOfMemory",
    "enhance_image",
    "load_image",
    "load_mirnet",
    "mirnet_pipeline",
    "to_float_rgb",
    "enhancement_loss",
    "tiled_forward",
]
