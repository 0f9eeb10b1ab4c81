"""Write a folder that the Hub (or a local path) serves: weights, config, processor, code and pipeline; upload it.

Loading and running a model live in `inference.py` (`load_mirnet`, `Enhancer`).
"""

import copy
import os

from .image_processing_mirnet import MIRNetImageProcessor
from .modeling_mirnet import MIRNetModel
from .pipeline_mirnet import MIRNetImageToImagePipeline

SAVED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def save_for_hub(model: MIRNetModel, folder: str | os.PathLike, image_processor: MIRNetImageProcessor | None = None):
    """Save `model` so that AutoModel, AutoImageProcessor and `pipeline("image-to-image", ...)` load `folder`.

    Writes model.safetensors, config.json (with auto_map and custom_pipelines), preprocessor_config.json and the
    code files, so `trust_remote_code=True` works where this package is not installed. `model.config` is left
    exactly as it was. Returns the folder.
    """
    folder = os.fspath(folder)
    image_processor = image_processor or MIRNetImageProcessor(size_divisor=model.config.size_divisor)
    config = model.config
    before = copy.deepcopy(config.__dict__)
    try:
        # save_pretrained merges the other auto_map entries into this one (AutoConfig, AutoModel)
        config.auto_map = {"AutoModelForImageToImage": "modeling_mirnet.MIRNetModel"}
        pipe = MIRNetImageToImagePipeline(model=model, image_processor=image_processor, device=model.device)
        pipe.save_pretrained(folder)
    finally:  # saving writes auto_map, custom_pipelines, architectures, dtype into the caller's config: undo that
        config.__dict__.clear()
        config.__dict__.update(before)
    return folder


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False,
                       repo_type: str = "model", commit_message: str | None = None) -> str:
    """Upload a folder to `repo_id` in one commit: a model folder written by `save_for_hub` (plus its README.md
    model card), or with `repo_type="dataset"` a dataset folder written by train/prepare_dataset.py."""
    from huggingface_hub import HfApi

    folder = os.fspath(folder)
    if repo_type == "model":
        missing = [f for f in SAVED_FILES if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(f"{folder}: not a saved MIRNet folder (missing {', '.join(missing)})")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    message = commit_message or ("Upload MIRNet checkpoint" if repo_type == "model" else "Add dataset (train/prepare_dataset.py)")
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type, commit_message=message)
    return str(info)


__all__ = ["save_for_hub", "push_folder_to_hub"]
