"""Write a folder that the Hub (or a local path) serves: weights, config, processor, code and pipeline."""

import os

import torch

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


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a folder written by `save_for_hub` (plus its README.md model card) to `repo_id` in one commit."""
    from huggingface_hub import HfApi

    folder = os.fspath(folder)
    missing = [f for f in ("config.json", "model.safetensors", "preprocessor_config.json") if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise FileNotFoundError(f"{folder}: not a saved MIRNet folder (missing {', '.join(missing)})")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Upload MIRNet checkpoint")
    return str(info)


class ModelLoadError(RuntimeError):
    """A model folder or Hub id that cannot be loaded; the message says which and why."""


def load_mirnet(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """(model, image_processor) from a local folder or a Hub id, in eval mode on `device`.

    Works offline for local folders and for Hub ids already in the cache (set HF_HUB_OFFLINE=1). Raises
    ModelLoadError naming the source when it is missing or is not a MIRNet checkpoint.
    """
    from transformers import AutoModel

    name = os.fspath(name_or_path)
    looks_local = os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local and not os.path.isdir(name):
        raise ModelLoadError(f"{name}: no such model folder")
    try:
        model = AutoModel.from_pretrained(name, dtype=dtype) if dtype else AutoModel.from_pretrained(name)
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{name}: cannot load a MIRNet model ({first_line})") from err
    if not isinstance(model, MIRNetModel):
        raise ModelLoadError(f"{name}: is a {type(model).__name__}, not a MIRNet model")
    try:
        processor = MIRNetImageProcessor.from_pretrained(name)
    except (OSError, ValueError):  # a folder with weights only: the processor follows from the config
        processor = MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    return model.to(device).eval(), processor


def enhance_image(model: MIRNetModel, processor: MIRNetImageProcessor, image, tile_size: int | None = None, tile_overlap: int = 32):
    """One image (PIL, numpy or torch) in, the enhanced PIL image of the same size out: preprocess, run the network
    (whole, or in `tile_size` tiles overlapping by `tile_overlap`), crop back and quantize to 8-bit RGB."""
    inputs = processor(image, return_tensors="pt")
    reconstruction = model.enhance(inputs["pixel_values"], tile_size=tile_size, tile_overlap=tile_overlap)
    return processor.post_process_image_to_image(reconstruction, inputs["original_sizes"])[0]


__all__ = ["save_for_hub", "load_mirnet", "push_folder_to_hub", "enhance_image", "ModelLoadError"]
