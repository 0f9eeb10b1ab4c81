"""Image processor and input checks."""

import io
import struct
import zlib

import numpy as np
import PIL.Image
import pytest
import torch

from modeling_mirnet import ImageLoadError, MIRNetImageProcessor, load_image, to_float_rgb

from helpers import random_image


@pytest.fixture
def processor():
    return MIRNetImageProcessor()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "RGB"])
def test_any_pil_mode_becomes_rgb_in_unit_range(processor, mode):
    image = random_image(13, 17, mode=mode)
    batch = processor(image)
    assert batch["pixel_values"].shape == (1, 3, 16, 20)
    assert batch["pixel_values"].dtype == torch.float32
    assert 0 <= batch["pixel_values"].min() and batch["pixel_values"].max() <= 1
    assert list(batch) == ["pixel_values"]  # what the model takes: model(**processor(images))


def test_16_bit_images_use_the_full_range(processor):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = PIL.Image.new("I;16", (3, 1))
    image.putdata(values.ravel().tolist())
    array = to_float_rgb(image)
    np.testing.assert_allclose(array[0, :, 0], [0, 32768 / 65535, 1], atol=1e-6)
    assert array.shape == (1, 3, 3)


def test_rgb_values_are_rescaled_exactly(processor):
    image = random_image(8, 8)
    expected = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(processor(image)["pixel_values"][0], expected)


def test_exif_orientation_is_applied(tmp_path):
    image = random_image(20, 40)  # landscape pixels, EXIF says rotate 90 degrees
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)
    with PIL.Image.open(path) as raw:
        assert to_float_rgb(raw).shape == (40, 20, 3)


def test_numpy_and_torch_inputs(processor):
    rgb = np.asarray(random_image(12, 10))
    from_uint8 = processor(rgb)["pixel_values"]
    from_chw_float = processor(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)["pixel_values"]
    from_gray = processor(rgb[..., 0])["pixel_values"]
    torch.testing.assert_close(from_uint8, from_chw_float)
    torch.testing.assert_close(from_gray[0, 1], from_gray[0, 0])
    assert from_uint8.shape == (1, 3, 12, 12)


def test_reflect_padding_and_crop_back(processor):
    image = random_image(10, 9)
    batch = processor(image)
    pixels = batch["pixel_values"][0]
    assert pixels.shape == (3, 12, 12)
    # reflect padding mirrors the rows/columns before the edge (the edge itself is not repeated)
    torch.testing.assert_close(pixels[:, 10], pixels[:, 8])
    torch.testing.assert_close(pixels[:, :, 9], pixels[:, :, 7])
    restored = processor.post_process_image_to_image(batch["pixel_values"], [image.size[::-1]])[0]
    assert restored.size == image.size and restored.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(restored), np.asarray(image))


def test_batches_of_different_sizes(processor):
    images = [random_image(10, 30, seed=1), random_image(25, 8, seed=2)]
    batch = processor(images)
    assert batch["pixel_values"].shape == (2, 3, 28, 32)
    outputs = processor.post_process_image_to_image(batch["pixel_values"], [image.size[::-1] for image in images])
    assert [o.size for o in outputs] == [(30, 10), (8, 25)]
    for out, image in zip(outputs, images):
        np.testing.assert_array_equal(np.asarray(out), np.asarray(image))


def test_post_process_clamps(processor):
    out = processor.post_process_image_to_image(torch.tensor([[[[-1.0, 0.5, 2.0]]]]).expand(1, 3, 1, 3))[0]
    assert np.asarray(out)[0, :, 0].tolist() == [0, 128, 255]


def test_processor_round_trip(tmp_path):
    MIRNetImageProcessor(size_divisor=8, max_pixels=1000).save_pretrained(tmp_path)
    loaded = MIRNetImageProcessor.from_pretrained(tmp_path)
    assert (loaded.size_divisor, loaded.max_pixels) == (8, 1000)


# --- bad input: clear errors that name the file and the problem -------------------------------------------


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the data is tiny): tests limits without allocating."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.png: not an image file"):
        load_image(path)


def test_load_errors_carry_the_problem_apart_from_the_name(tmp_path):
    """Callers that show a file under another name (the Space: the upload's name) say it once, from `problem`."""
    import pickle

    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageLoadError) as failure:
        load_image(tmp_path / "notes.png")
    err = failure.value
    assert (err.name, err.problem) == (str(tmp_path / "notes.png"), "not an image file PIL can read")
    assert str(err) == f"{tmp_path / 'notes.png'}: not an image file PIL can read"
    again = pickle.loads(pickle.dumps(err))
    assert (again.name, again.problem, str(again)) == (err.name, err.problem, str(err))


def test_truncated_file(tmp_path):
    buffer = io.BytesIO()
    random_image(64, 64).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.png: cannot decode image .*truncated"):
        load_image(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg: empty file"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_absurd_dimensions_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming_size(60000, 60000))
    with pytest.raises(ImageLoadError, match=r"huge\.png: image too large: over the limit of 100 MP"):
        load_image(path)
    path.write_bytes(png_claiming_size(12000, 10000))  # under PIL's own bomb limit, over ours
    with pytest.raises(ImageLoadError, match=r"huge\.png: image too large: 12000x10000 is 120 MP, over the limit of 100 MP"):
        load_image(path)


def test_zero_size_and_bad_arrays(processor):
    with pytest.raises(ImageLoadError, match="zero-size"):
        processor(np.zeros((0, 5, 3), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match=r"in \[0, 1\]"):
        processor(np.full((4, 4, 3), 200.0, dtype=np.float32))
    with pytest.raises(ImageLoadError, match="NaN"):
        processor(np.full((4, 4, 3), np.nan, dtype=np.float32))
    with pytest.raises(ImageLoadError, match="shape"):
        processor(np.zeros((5, 5, 7), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="PIL image, numpy array"):
        processor(42)


# --- settings: do_rescale, rescale_factor, do_pad, size_divisor, return_tensors, at init and per call -------


def test_do_rescale_false_takes_values_as_they_are(processor):
    mask = np.zeros((8, 8, 3), dtype=np.uint8)
    mask[2:5, 3:6] = 1  # integer data already in [0, 1]
    pixels = processor(mask, do_rescale=False)["pixel_values"]
    torch.testing.assert_close(pixels[0], torch.from_numpy(mask.astype(np.float32)).permute(2, 0, 1))
    assert processor(mask)["pixel_values"].max().item() == pytest.approx(1 / 255)  # rescaled by default
    with pytest.raises(ImageLoadError, match=r"do_rescale=False nothing is rescaled"):
        processor(random_image(8, 8), do_rescale=False)  # an 8-bit photo: 0..255 is not in [0, 1]
    # float data is never rescaled, whatever do_rescale says
    floats = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    torch.testing.assert_close(processor(floats, do_rescale=False)["pixel_values"], processor(floats)["pixel_values"])


def test_do_rescale_false_is_saved_and_used(tmp_path):
    MIRNetImageProcessor(do_rescale=False).save_pretrained(tmp_path)
    loaded = MIRNetImageProcessor.from_pretrained(tmp_path)
    assert loaded.do_rescale is False
    ones = np.ones((8, 8), dtype=np.uint8)
    assert loaded(ones)["pixel_values"].min().item() == 1.0
    assert loaded(ones * 255, do_rescale=True)["pixel_values"].min().item() == 1.0


def test_rescale_factor_applies_to_8_bit_data_only(processor):
    data = np.full((8, 8, 3), 100, dtype=np.uint8)
    assert processor(data, rescale_factor=1 / 100)["pixel_values"].max().item() == 1.0
    with pytest.raises(ImageLoadError, match=r"dividing the integer data by 50"):
        processor(data, rescale_factor=1 / 50)  # 100 / 50 = 2: out of range is an error, not a silent clip
    sixteen = np.full((8, 8), 65535, dtype=np.uint16)
    assert processor(sixteen, rescale_factor=1 / 100)["pixel_values"].max().item() == 1.0  # always its own range


def test_do_pad_and_size_divisor_per_call(processor):
    image = random_image(10, 13)
    assert processor(image)["pixel_values"].shape[-2:] == (12, 16)
    assert processor(image, size_divisor=8)["pixel_values"].shape[-2:] == (16, 16)
    assert processor(image, do_pad=False)["pixel_values"].shape[-2:] == (10, 13)
    # different sizes still have to be stacked: padded to the largest only
    batch = processor([image, random_image(6, 20)], do_pad=False)
    assert batch["pixel_values"].shape[-2:] == (10, 20)
    # None keeps the processor's own setting, and a call does not change it
    assert processor(image, do_pad=None, size_divisor=None)["pixel_values"].shape[-2:] == (12, 16)
    assert (processor.do_pad, processor.size_divisor) == (True, 4)


def test_return_tensors(processor):
    image = random_image(8, 8)
    assert isinstance(processor(image)["pixel_values"], torch.Tensor)
    for kind in ("np", None):
        pixels = processor(image, return_tensors=kind)["pixel_values"]
        assert isinstance(pixels, np.ndarray) and pixels.dtype == np.float32
    with pytest.raises(ValueError, match="return_tensors"):
        processor(image, return_tensors="tf")


def test_unknown_keywords_are_refused_by_name(processor):
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) do_resacle, sizedivisor; it accepts"):
        processor(random_image(8, 8), do_resacle=False, sizedivisor=8)
    with pytest.raises(TypeError, match="do_normalize"):
        processor(random_image(8, 8), do_normalize=True)  # MIRNet takes [0, 1] input, never normalised


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"do_rescale": "no"}, "do_rescale must be True or False"),
        ({"do_pad": 1}, "do_pad must be True or False"),
        ({"size_divisor": 0}, "size_divisor must be a positive integer"),
        ({"max_pixels": 2.5}, "max_pixels must be a positive integer"),
        ({"rescale_factor": 0}, "rescale_factor must be a positive number"),
    ],
)
def test_bad_settings_give_clear_errors(processor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        processor(random_image(8, 8), **kwargs)
    with pytest.raises(ValueError, match=message):
        MIRNetImageProcessor(**kwargs)


@pytest.mark.parametrize("size, target", [((5, 7), (8, 8)), ((2, 3), (9, 12)), ((1, 4), (4, 8)), ((3, 1), (4, 4)), ((6, 6), (6, 6))])
def test_the_one_padder_matches_numpy_and_serves_processor_and_validation(size, target):
    """`reflect_pad` is numpy's "reflect" (repeated where the padding exceeds the image; "edge" for one-pixel sides),
    and validation's `pad_to_multiple` pads a photo exactly as the image processor does."""
    from modeling_mirnet.image_processing_mirnet import pad_to_multiple, reflect_pad

    array = np.random.default_rng(0).random((*size, 3))
    expected = np.pad(array, ((0, target[0] - size[0]), (0, target[1] - size[1]), (0, 0)), mode="reflect" if min(size) > 1 else "edge")
    np.testing.assert_array_equal(reflect_pad(torch.from_numpy(array).permute(2, 0, 1), *target).permute(1, 2, 0).numpy(), expected)
    image = PIL.Image.fromarray((array * 255).astype(np.uint8))
    processed = MIRNetImageProcessor(size_divisor=4)(image)["pixel_values"]
    from modeling_mirnet.evaluation import image_to_uint8_tensor

    (validated,) = pad_to_multiple([image_to_uint8_tensor(image)[None].float().div(255)], 4)
    torch.testing.assert_close(processed, validated, rtol=0, atol=1e-7)


def test_resizing_and_normalising_settings_are_refused():
    """MIRNet restores a photo at its own size and in [0, 1]; a saved config asking otherwise is an error, not ignored."""
    with pytest.raises(ValueError, match="do_normalize is not supported"):
        MIRNetImageProcessor(do_normalize=True)
    with pytest.raises(ValueError, match="do_resize is not supported"):
        MIRNetImageProcessor(do_resize=True)
    assert MIRNetImageProcessor(do_normalize=False).to_dict()["do_normalize"] is False
