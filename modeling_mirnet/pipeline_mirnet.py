"""The "image-to-image" pipeline for MIRNet (transformers 5 removed its built-in one), saved beside checkpoints."""

from transformers import Pipeline

from .image_processing_mirnet import load_image


class MIRNetImageToImagePipeline(Pipeline):
    """Low-light image in (PIL image, array or file path), enhanced PIL image of the same size out.

    `tile_size` (and `tile_overlap`) run large photos in overlapping tiles to bound memory.
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, tile_size=None, tile_overlap=None, **kwargs):
        forward = {}
        if tile_size is not None:
            forward["tile_size"] = tile_size
        if tile_overlap is not None:
            forward["tile_overlap"] = tile_overlap
        return {}, forward, {}

    def preprocess(self, image):
        if isinstance(image, str):
            image = load_image(image)
        return self.image_processor(image, return_tensors="pt")

    def _forward(self, model_inputs, tile_size=None, tile_overlap=32):
        reconstruction = self.model.enhance(model_inputs["pixel_values"], tile_size=tile_size, tile_overlap=tile_overlap)
        return {"reconstruction": reconstruction, "original_sizes": model_inputs["original_sizes"]}

    def postprocess(self, model_outputs):
        images = self.image_processor.post_process_image_to_image(
            model_outputs["reconstruction"], model_outputs["original_sizes"]
        )
        return images[0]


__all__ = ["MIRNetImageToImagePipeline"]
