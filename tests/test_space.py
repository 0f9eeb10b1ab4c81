"""The Gradio Space (space/app.py), served on 127.0.0.1 and driven through gradio_client, as a user's browser would."""

import json
import os
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("gradio", reason="the Space needs gradio: pip install -e '.[space]'")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from modeling_mirnet import MIRNetModel  # noqa: E402
from modeling_mirnet.inference import Enhancer, load_mirnet  # noqa: E402
from modeling_mirnet.cli import main as cli_main  # noqa: E402
from modeling_mirnet.image_processing_mirnet import to_float_rgb, to_uint8  # noqa: E402
from modeling_mirnet.metrics import autocontrast, psnr, ssim, well_exposed_note  # noqa: E402

from helpers import photos_of_every_kind  # noqa: E402
from space_helpers import LOL, load_space_app, served  # noqa: E402

LABEL = "mirnet-tiny"  # the fixture folder's name: a test model, never offered to users


def dark_image(path, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], -1) * 50
    array = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
    PIL.Image.fromarray(array).save(path)
    return path


def read(path) -> PIL.Image.Image:
    return PIL.Image.open(path).convert("RGB")


def as_decoded(path) -> np.ndarray:
    """The file as the package decodes it, in 8 bits: what the Space must show as the input."""
    return to_uint8(torch.from_numpy(to_float_rgb(path))).numpy()


def cli_outputs(files, model_dir, out) -> dict[str, np.ndarray]:
    """mirnet-enhance's result for each file (name -> 8-bit RGB array), run in this process."""
    assert cli_main([*map(str, files), "-o", str(out), "--model", str(model_dir)]) == 0
    return {Path(f).name: np.asarray(read(out / Path(f).with_suffix(".png").name)).astype(int) for f in files}


def enhance(client, image, reference=None, checkpoint=LABEL, tiling="auto", tile_size=512, brightness=0.0, strength=1.0):
    return client.predict(
        handle_file(str(image)), handle_file(str(reference)) if reference else None, checkpoint, tiling, tile_size,
        brightness, strength, api_name="/enhance",
    )


@pytest.fixture(scope="module")
def app_with_model(tiny_model_dir, tmp_path_factory):
    with served({LABEL: str(tiny_model_dir)}, tile_pixels=20_000) as (app, demo):
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
        yield app, demo, client


def test_enhance_example_gives_full_size_mirnet_and_autocontrast(app_with_model, tiny_model_dir):
    _, demo, client = app_with_model
    example = LOL / "low" / "780.png"
    status, mirnet, baseline, side_by_side, metrics, files, _ = enhance(client, example)
    source = read(example)
    assert LABEL in status and "600x400" in status
    # the page and the status say where and in which precision MIRNet ran ("auto": bf16 where the CPU has it)
    precision = "bf16 autocast" if demo.space.dtype == torch.bfloat16 else "fp32"
    assert "on CPU (" in status and precision in status and precision in demo.space.notice()
    before, after = (read(p) for p in mirnet)
    assert before.size == after.size == source.size == (600, 400)
    assert np.array_equal(np.asarray(before), np.asarray(source))
    # the MIRNet panel holds exactly what the package computes (PNG: no lossy re-encoding on the way)
    expected = Enhancer(*load_mirnet(tiny_model_dir), precision=demo.space.precision)(source)
    diff = np.abs(np.asarray(after).astype(int) - np.asarray(expected).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding between threads, nothing more
    assert np.array_equal(np.asarray(read(baseline[1])), np.asarray(autocontrast(source)))
    assert [item["caption"] for item in side_by_side] == ["Input", f"MIRNet ({LABEL})", "PIL autocontrast"]
    assert "reference" in metrics.lower()
    downloads = [read(p) for p in files]  # full-resolution PNGs: MIRNet first, then autocontrast
    assert [d.size for d in downloads] == [(600, 400)] * 2
    assert np.array_equal(np.asarray(downloads[0]), np.asarray(after))
    assert all(str(p).endswith(".png") for p in files)


def test_every_kind_of_photo_reaches_the_model_as_the_cli_decodes_it(app_with_model, tiny_model_dir, tmp_path):
    """16-bit gray and RGB, "I", "F", gray+alpha, palette with transparency, CMYK, EXIF-rotated: the Space's input
    panel is the package's decoding and its result is mirnet-enhance's, file for file."""
    _, _, client = app_with_model
    photos = photos_of_every_kind(tmp_path / "in")
    expected = cli_outputs(photos.values(), tiny_model_dir, tmp_path / "cli")
    for name, path in photos.items():
        status, mirnet, *_ = enhance(client, path)
        shown = np.asarray(read(mirnet[0]))
        assert np.array_equal(shown, as_decoded(path)), name
        assert shown.mean() < 60 and "well exposed" not in status, name  # dark, as the file is (not clipped to white)
        assert np.abs(np.asarray(read(mirnet[1])).astype(int) - expected[name]).max() <= 1, name
    assert read(enhance(client, photos["rotated.jpg"])[1][1]).size == (36, 52)  # turned upright, as the CLI does


def test_reference_gives_psnr_ssim_of_both_results(app_with_model, tmp_path):
    _, _, client = app_with_model
    image = dark_image(tmp_path / "dark.png")
    reference = tmp_path / "bright.png"
    PIL.Image.fromarray(np.clip(np.asarray(read(image)).astype(int) * 4, 0, 255).astype(np.uint8)).save(reference)
    _, mirnet, baseline, _, metrics, *_ = enhance(client, image, reference)
    rows = dict(re.findall(r"^\| (.+?) \| ([-\d.]+ \| [-\d.]+) \|$", metrics, flags=re.M))
    ref = read(reference)
    for name, result in [(f"MIRNet ({LABEL})", mirnet[1]), ("PIL autocontrast", baseline[1]), ("Input (no enhancement)", image)]:
        shown_psnr, shown_ssim = (float(v) for v in rows[name].split(" | "))
        assert shown_psnr == pytest.approx(psnr(read(result), ref), abs=0.006)
        assert shown_ssim == pytest.approx(ssim(read(result), ref), abs=6e-5)
    # a reference of another size: no numbers, a message, and the enhancement still comes back
    small = tmp_path / "small.png"
    read(reference).resize((32, 24)).save(small)
    _, mirnet, _, _, metrics, *_ = enhance(client, image, small)
    assert "same size" in metrics and mirnet is not None


def test_bad_uploads_give_a_readable_message_and_the_app_stays_up(app_with_model, tmp_path):
    _, _, client = app_with_model
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is a text file, not a picture\n" * 10)
    with pytest.raises(AppError, match=r"^Cannot read the input \(notes\.png\): not an image file PIL can read$") as failure:
        enhance(client, not_an_image)
    assert failure.value.message.count("notes.png") == 1

    truncated = tmp_path / "cut.png"
    truncated.write_bytes((LOL / "low" / "493.png").read_bytes()[:6000])
    with pytest.raises(AppError, match=r"cut\.png.*truncated"):
        enhance(client, truncated)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match=r"empty\.png.*empty file"):
        enhance(client, empty)

    bomb = tmp_path / "huge.png"  # 36 MP of one colour: a few kB on disk, too many pixels to decode
    PIL.Image.new("1", (6000, 6000)).save(bomb)
    with pytest.raises(AppError, match=r"huge\.png.*too large"):
        enhance(client, bomb)

    big_file = tmp_path / "big.png"  # over this app's max_file_size (2 MB): refused before anything runs
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(big_file)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        enhance(client, big_file)

    with pytest.raises(AppError, match=r"^Cannot read the reference \(notes\.png\): not an image"):  # a bad reference too
        enhance(client, dark_image(tmp_path / "ok.png"), not_an_image)

    status, mirnet, *_ = enhance(client, dark_image(tmp_path / "after.png"))  # still serving
    assert LABEL in status and mirnet is not None


def test_concurrent_requests_all_succeed(app_with_model, tmp_path):
    _, _, client = app_with_model
    sizes = [(40, 56), (48, 64), (36, 52), (44, 60)]
    images = [dark_image(tmp_path / f"in{i}.png", h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    jobs = [client.submit(handle_file(str(p)), None, LABEL, "auto", 512, api_name="/enhance") for p in images]
    results = [job.result(timeout=60) for job in jobs]
    for (h, w), (status, mirnet, baseline, *_) in zip(sizes, results):
        assert read(mirnet[1]).size == (w, h) and read(baseline[1]).size == (w, h)


def test_large_images_are_tiled(app_with_model, tmp_path):
    _, _, client = app_with_model  # this app tiles above 20,000 pixels
    image = dark_image(tmp_path / "wide.png", 120, 200)
    status, mirnet, *_ = enhance(client, image, tile_size=128)
    assert "tiles of 128 px" in status and read(mirnet[1]).size == (200, 120)
    status, mirnet, *_ = enhance(client, image, tiling="never")
    assert "whole image" in status and read(mirnet[1]).size == (200, 120)


def test_without_checkpoint_the_notice_is_shown_and_mirnet_is_not(tmp_path):
    import httpx

    with served({}) as (_, demo):
        page_config = httpx.get(demo.local_url + "config", timeout=10).text
        assert "No trained MIRNet checkpoint was found" in page_config
        assert "mirnet-convert model_lol.pth space/checkpoints/mirnet-lol" in page_config
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path))
        status, mirnet, baseline, side_by_side, metrics, files, _ = enhance(
            client, LOL / "low" / "179.png", LOL / "high" / "179.png", checkpoint=None
        )
    assert mirnet is None and "No trained MIRNet checkpoint" in status
    assert [item["caption"] for item in side_by_side] == ["Input", "PIL autocontrast"]
    assert "MIRNet" not in metrics and "PIL autocontrast" in metrics
    assert len(files) == 1 and "autocontrast" in os.path.basename(files[0])
    assert read(baseline[1]).size == (600, 400)


def test_checkpoint_discovery_and_labels(tmp_path, monkeypatch):
    app = load_space_app()  # LABEL=SOURCE parsing is the package's (tests/test_inference.py)
    assert app.default_checkpoints(["org/mirnet-lol,org/mirnet-sice", "Mine=/models/x"]) == {
        "LoL": "org/mirnet-lol", "SICE": "org/mirnet-sice", "Mine": "/models/x"}
    with pytest.raises(SystemExit) as exit_info:  # a label given twice is a usage error of the app's command line
        app.parse_args(["--model", "LoL=a", "--model", "LoL=b"])
    assert exit_info.value.code == 2
    monkeypatch.setenv("MIRNET_MODEL", "a/mirnet-lol")
    assert app.default_checkpoints() == {"LoL": "a/mirnet-lol"}
    assert app.default_checkpoints(["SICE=b/c"]) == {"SICE": "b/c"}  # the flag wins over the variable
    monkeypatch.delenv("MIRNET_MODEL")
    for name in ("mirnet-sice", "mirnet-lol"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    assert list(app.bundled_checkpoints(tmp_path)) == ["LoL", "SICE"]


def test_hub_ids_load_offline_from_the_cache_and_failures_are_reported(tiny_model_dir, offline_hf_home, tmp_path):
    import shutil

    snapshot = offline_hf_home / "hub" / "models--org--mirnet-lol" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (offline_hf_home / "hub" / "models--org--mirnet-lol" / "refs").mkdir()
    (offline_hf_home / "hub" / "models--org--mirnet-lol" / "refs" / "main").write_text("a" * 40)
    broken = tmp_path / "mirnet-broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    app = load_space_app()
    space = app.MIRNetSpace({"LoL": "org/mirnet-lol", "SICE": "org/not-cached", "Broken": str(broken)}, device="cpu")
    assert space.labels == ["LoL"]
    notice = space.notice()
    assert "org/not-cached" in notice and "mirnet-broken" in notice and "could not be loaded" in notice
    assert "No trained MIRNet checkpoint" not in notice


def test_out_of_memory_gives_the_packages_message_with_a_tile_size(app_with_model, tmp_path, monkeypatch):
    _, _, client = app_with_model

    def enhance_out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(MIRNetModel, "enhance", enhance_out_of_memory)  # the app runs in this process
    image = dark_image(tmp_path / "photo.png", 400, 600)
    with pytest.raises(AppError, match=r"Out of memory on cpu enhancing a 600x400 image as a whole: try tiles of "
                                       r"288 px \(Tiling: 'always', tile size 288\)"):
        enhance(client, image, tiling="never")
    with pytest.raises(AppError, match=r"in tiles of 512 px: try tiles of 256 px \(Tiling: 'always', tile size 256\)"):
        enhance(client, image, tiling="always", tile_size=512)
    with pytest.raises(AppError, match=r"in tiles of 128 px: use a smaller image or a device with more memory\.$"):
        enhance(client, image, tiling="always", tile_size=128)


def test_brightness_and_strength_sliders_give_the_packages_result(app_with_model, tiny_model_dir, tmp_path):
    _, demo, client = app_with_model
    image = dark_image(tmp_path / "dark.png")
    status, mirnet, *_ = enhance(client, image, brightness=1.0, strength=0.5)
    expected = Enhancer(*load_mirnet(tiny_model_dir), precision=demo.space.precision)(read(image), brightness=1.0, strength=0.5)
    diff = np.abs(np.asarray(read(mirnet[1])).astype(int) - np.asarray(expected).astype(int))
    assert diff.max() <= 1 and "brightness +1 stops, strength 0.5" in status
    with pytest.raises(AppError, match="greater than maximum value 3"):  # gradio checks the slider's range
        enhance(client, image, brightness=5.0)


def test_exposure_controls_render_what_the_package_renders_and_sliders_apply_on_release(tiny_model_dir, tmp_path):
    from modeling_mirnet.hub import save_for_hub
    from helpers import tiny_config

    torch.manual_seed(0)
    conditioned = tmp_path / "conditioned"
    save_for_hub(MIRNetModel(tiny_config(exposure_conditioning=True)).eval(), conditioned)
    image = dark_image(tmp_path / "dark.png")
    with served({"exposure": str(conditioned), "plain": str(tiny_model_dir)}) as (app, demo):
        client = Client(demo.local_url, verbose=False, download_files=str(tmp_path / "downloads"))
        enhancer = Enhancer(*load_mirnet(conditioned), precision=demo.space.precision)
        predicted = float(enhancer.exposure(enhancer.preprocess(read(image))["pixel_values"])[0])

        def same(path, expected):
            return np.abs(np.asarray(read(path)).astype(int) - np.asarray(expected).astype(int)).max() <= 1

        # auto: the model's guess, rendered, named in the status and shown on the exposure slider
        status, mirnet, *_, shown = client.predict(handle_file(str(image)), None, "exposure", "auto", 512, 0.0, 1.0, True, 0.0,
                                                   api_name="/enhance")
        assert f"exposure {predicted:+.2f} stops (predicted)" in status and shown == pytest.approx(round(predicted, 2))
        assert same(mirnet[1], enhancer(read(image)))
        # the exposure slider released: that exposure, rendered, and "auto" unticked
        status, mirnet, *_, shown, auto = client.predict(handle_file(str(image)), None, "exposure", "auto", 512, 0.0, 1.0,
                                                         True, 1.5, api_name="/render_exposure")
        assert "exposure +1.50 stops (set)" in status and shown == 1.5 and auto is False
        assert same(mirnet[1], enhancer(read(image), exposure=1.5))
        with pytest.raises(AppError, match="Checkpoint plain renders its own exposure"):
            client.predict(handle_file(str(image)), None, "plain", "auto", 512, 0.0, 1.0, False, 1.5, api_name="/enhance")
        # brightness, strength and exposure apply when released, without another click
        released = {target[0] for dependency in demo.config["dependencies"] for target in dependency["targets"]
                    if target[1] == "release"}
        sliders = {block.elem_id: block._id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
        assert {sliders["brightness"], sliders["strength"], sliders["exposure"]} <= released


def test_a_well_exposed_upload_is_named_so_and_labels_hide_local_paths(app_with_model, tiny_model_dir, tmp_path):
    _, demo, client = app_with_model
    assert str(tiny_model_dir) not in demo.space.notice() and f"`{tiny_model_dir.name}`" in demo.space.notice()
    bright = tmp_path / "sunny.png"
    PIL.Image.fromarray(np.full((40, 60, 3), 150, dtype=np.uint8)).save(bright)
    status, *_ = enhance(client, bright)
    assert "already well exposed (mean gray 150 of 255): MIRNet is made for dark photos" in status
    status, *_ = enhance(client, dark_image(tmp_path / "dark.png"))
    assert "well exposed" not in status


def test_several_photos_pair_each_result_with_its_input_and_say_what_the_one_photo_tab_says(app_with_model, tiny_model_dir, tmp_path):
    import zipfile

    _, demo, client = app_with_model
    app = load_space_app()
    photos = [dark_image(tmp_path / f"night{i}.png", seed=i) for i in range(2)]
    gray16 = photos_of_every_kind(tmp_path / "kinds")["gray16.png"]  # decoded as the CLI decodes it, here too
    sunny = tmp_path / "sunny.png"
    PIL.Image.fromarray(np.full((40, 60, 3), 150, dtype=np.uint8)).save(sunny)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    uploads = [photos[0], bad, gray16, sunny, photos[1]]
    status, gallery, slider, archive = client.predict([handle_file(str(p)) for p in uploads], LABEL, 0.0, 1.0,
                                                      api_name="/enhance_many")
    assert f"MIRNet ({LABEL}) enhanced 4 of 5 photo(s)" in status
    lines = {line.split(":")[0].removeprefix("- "): line for line in status.splitlines() if line.startswith("- ")}
    assert list(lines) == ["night0.png", "notes.png", "gray16.png", "sunny.png", "night1.png"]
    assert lines["notes.png"] == "- notes.png: not enhanced (not an image file PIL can read)."  # its name once
    assert "already well exposed (mean gray 150 of 255): MIRNet is made for dark photos" in lines["sunny.png"]
    assert all("well exposed" not in lines[n] for n in ("night0.png", "gray16.png", "night1.png"))
    assert "enhanced 52x36" in lines["gray16.png"]
    # each result beside its input, in upload order; the bright one says so under the picture too
    assert [item["caption"] for item in gallery] == [
        "night0.png: input", f"night0.png: MIRNet ({LABEL})", "gray16.png: input", f"gray16.png: MIRNet ({LABEL})",
        "sunny.png: input", f"sunny.png: MIRNet ({LABEL}), already well exposed", "night1.png: input",
        f"night1.png: MIRNet ({LABEL})"]
    enhanced = cli_outputs([p for p in uploads if p != bad], tiny_model_dir, tmp_path / "cli")
    for k, path in enumerate([photos[0], gray16, sunny, photos[1]]):
        assert np.array_equal(np.asarray(read(gallery[2 * k]["image"])), as_decoded(path))
        assert np.abs(np.asarray(read(gallery[2 * k + 1]["image"])).astype(int) - enhanced[path.name]).max() <= 1
    # the slider compares the first pair; a click on any image of a pair shows that pair
    assert np.array_equal(np.asarray(read(slider[0])), as_decoded(photos[0]))
    assert np.abs(np.asarray(read(slider[1])).astype(int) - enhanced["night0.png"]).max() <= 1
    pairs = [(f"in{k}", f"out{k}") for k in range(3)]
    gallery_value = [item for pair in pairs for item in pair]
    assert [app.compare_pair(gallery_value, i) for i in (0, 3, 5)] == pairs[:1] + pairs[1:]
    assert app.compare_pair([], 0) is None
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == ["001_night0.png", "003_gray16.png", "004_sunny.png", "005_night1.png", "notes.txt"]
        for name, source in zip(zipped.namelist(), [photos[0], gray16, sunny, photos[1]]):
            with zipped.open(name) as f:
                written = np.asarray(PIL.Image.open(f).convert("RGB")).astype(int)
            assert np.abs(written - enhanced[source.name]).max() <= 1  # full resolution, mirnet-enhance's result
        notes = zipped.read("notes.txt").decode()
    assert notes.splitlines() == [line.removeprefix("- ") for line in lines.values()]  # the zip says it too
    with pytest.raises(AppError, match="at most 16"):
        client.predict([handle_file(str(photos[0]))] * 17, LABEL, 0.0, 1.0, api_name="/enhance_many")


def test_examples_follow_the_manifest_order():
    app = load_space_app()
    manifest = json.loads((app.EXAMPLE_DIR / "examples.json").read_text())["examples"]
    rows = app.example_rows()
    assert [Path(r[0]).name for r in rows] == [m["input"] for m in manifest] and len(rows) == 3
    assert rows[0][1] is not None and all(Path(p).is_file() for r in rows for p in r if p)
    # the well-lit example is called well exposed by the package's rule (the CLI's too), the dark ones are not
    assert [well_exposed_note(app.decode_upload(r[0])[0]) is not None for r in rows] == [False, False, True]
