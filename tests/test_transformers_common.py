"""What transformers' common model tests check, for the parts MIRNet users rely on.

transformers 5.24's own ModelTesterMixin was run against MIRNetModel outside this repository; these are our own tests
of the checks that matter here: batching, save/load, dtype and device moves, determinism, gradient checkpointing,
torch.compile, memory formats, autocast, offloading with a device_map, and strict forward keywords.
"""

import copy
import inspect

import pytest
import torch
from transformers import AutoModel

from modeling_mirnet import MIRNetConfig, MIRNetImageProcessor, MIRNetModel, enhancement_loss

from helpers import random_image


def small_config(**overrides) -> MIRNetConfig:
    values = dict(num_features=8, num_rrg=2, num_mrb=1, num_streams=2, num_dau_columns=2, reduction=4)
    return MIRNetConfig(**{**values, **overrides})


@pytest.fixture
def model() -> MIRNetModel:
    torch.manual_seed(0)
    return MIRNetModel(small_config()).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def run(model, pixel_values, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values, **kwargs).reconstruction


def enable_checkpointing(model, **kwargs):
    # transformers 5.24 renamed gradient_checkpointing_enable (now a deprecated alias); older 5.x only have that
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def test_model_class_conventions(model):
    assert model.base_model is model  # no head: the model is its own base, and no weight prefix is added or stripped
    assert MIRNetModel.base_model_prefix == ""
    assert MIRNetModel.main_input_name == list(inspect.signature(MIRNetModel.forward).parameters)[1] == "pixel_values"
    assert MIRNetModel._no_split_modules == ["RRG"]
    assert MIRNetModel.supports_gradient_checkpointing
    assert model.get_input_embeddings() is model.conv_in


def test_a_batch_equals_single_runs(model, images):
    batched = run(model, images)
    singles = torch.cat([run(model, image[None]) for image in images])
    torch.testing.assert_close(batched, singles, rtol=1e-5, atol=1e-5)


def test_eval_mode_is_deterministic(model, images):
    first, second = run(model, images), run(model, images)
    assert torch.equal(first, second)


def test_save_and_reload_gives_identical_outputs(model, images, tmp_path):
    model.save_pretrained(tmp_path)
    reloaded = MIRNetModel.from_pretrained(tmp_path)
    assert not reloaded.training
    assert (reloaded.config.num_streams, reloaded.config.num_dau_columns) == (2, 2)
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    # the weights are bit-identical, but transformers loads them as views into one buffer, not 64-byte aligned, and
    # oneDNN then takes other code paths: outputs agree to float rounding (two loaded copies agree exactly)
    torch.testing.assert_close(run(reloaded, images), run(model, images), rtol=0, atol=1e-6)
    torch.testing.assert_close(run(AutoModel.from_pretrained(tmp_path), images), run(reloaded, images), rtol=0, atol=0)


def test_dtype_moves(model, images):
    reference = run(model, images)
    as_double = copy.deepcopy(model).to(torch.float64)
    out = run(as_double, images.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, reference.double(), rtol=1e-5, atol=1e-5)
    as_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    out = run(as_bf16, images.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, rtol=0, atol=3e-2)
    # and back: float32 again, from a float32 copy (a bf16 round trip would have rounded the weights)
    torch.testing.assert_close(run(as_double.float(), images), reference, rtol=1e-6, atol=1e-6)


def test_bf16_checkpoint_loads_in_its_dtype_or_as_asked(model, images, tmp_path):
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(tmp_path)
    assert MIRNetModel.from_pretrained(tmp_path).dtype == torch.bfloat16
    as_float = MIRNetModel.from_pretrained(tmp_path, dtype=torch.float32)
    assert as_float.dtype == torch.float32
    torch.testing.assert_close(run(as_float, images), run(model, images), rtol=0, atol=3e-2)


def test_cpu_device_move(model, images):
    """Moving the model off the CPU and back moves every parameter and buffer. Without a GPU the other device is
    "meta" (tensors without data): a tensor kept outside parameters and buffers, or one made on a fixed device in
    forward, would stay behind or clash there."""
    reference = run(model, images)
    assert model.to("cpu") is model and model.device.type == "cpu"
    torch.testing.assert_close(run(model, images), reference, rtol=0, atol=0)
    stray = [f"{name}.{key}" for name, module in model.named_modules() for key, value in vars(module).items()
             if isinstance(value, torch.Tensor)]
    assert not stray, f"tensors that .to() does not move: {stray}"
    off_cpu = copy.deepcopy(model).to("meta")
    assert off_cpu.device.type == "meta"
    assert {t.device.type for t in (*off_cpu.parameters(), *off_cpu.buffers())} == {"meta"}
    out = run(off_cpu, images.to("meta"))
    assert out.device.type == "meta" and out.shape == reference.shape
    back = off_cpu.to_empty(device="cpu")
    back.load_state_dict(model.state_dict())
    assert back.device.type == "cpu" and {t.device.type for t in (*back.parameters(), *back.buffers())} == {"cpu"}
    torch.testing.assert_close(run(back, images), reference, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_move(model, images):
    reference = run(model, images)
    on_gpu = copy.deepcopy(model).to("cuda")
    out = run(on_gpu, images.to("cuda"))
    assert out.device.type == "cuda"
    # cuDNN may use TF32 for convolutions: close, not equal
    torch.testing.assert_close(out.cpu(), reference, rtol=0, atol=5e-3)
    torch.testing.assert_close(run(on_gpu.to("cpu"), images), reference, rtol=0, atol=0)


def test_nchw_and_channels_last_agree(model, images):
    model.channels_last = True
    channels_last = run(model, images)
    model.channels_last = False
    nchw = run(model, images)
    torch.testing.assert_close(nchw, channels_last, rtol=1e-5, atol=1e-5)
    assert nchw.is_contiguous() and channels_last.is_contiguous()


def test_bf16_autocast_is_close_to_float32(model, images):
    reference = run(model, images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, images)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()  # the residual is added to the float32 input
    torch.testing.assert_close(out, reference, rtol=0, atol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = enhancement_loss(model.train()(images).reconstruction, images.flip(-1))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def gradients(model, images, labels, through=None):
    """Parameter gradients of `model` for one loss, computed by calling `through` (e.g. a compiled `model`)."""
    model.zero_grad(set_to_none=True)
    enhancement_loss((model if through is None else through)(images).reconstruction, labels).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(images, use_reentrant):
    torch.manual_seed(0)
    model = MIRNetModel(small_config()).train()
    labels = images.flip(-1)
    expected = gradients(model, images, labels)

    calls = []
    model.rrgs[0].mrbs[0].register_forward_hook(lambda *_: calls.append(1))
    enable_checkpointing(model, use_reentrant=use_reentrant)
    assert all(rrg.gradient_checkpointing for rrg in model.rrgs)
    got = gradients(model, images, labels)
    assert len(calls) == 2  # the forward, then its recomputation in the backward pass: it really checkpointed
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)

    # no recomputation without gradients or in eval mode
    calls.clear()
    run(model.eval(), images)
    assert len(calls) == 1
    disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
    disable()
    assert not any(rrg.gradient_checkpointing for rrg in model.rrgs)


def test_torch_compile_without_graph_breaks(images):
    torch.manual_seed(0)
    model = MIRNetModel(small_config(num_rrg=1)).eval()  # one RRG: tracing time grows with the depth
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(run(compiled, images), run(model, images), rtol=1e-5, atol=1e-5)
    # training through the compiled graph gives the eager gradients
    model.train()
    labels = images.flip(-1)
    expected = gradients(model, images, labels)
    got = gradients(model, images, labels, through=compiled)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    torch._dynamo.reset()


def test_disk_offload_with_a_device_map(model, images, tmp_path):
    """A device_map that offloads part of the model gives the same output; an RRG is never split between devices."""
    pytest.importorskip("accelerate")
    model.save_pretrained(tmp_path / "model")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    offloaded = MIRNetModel.from_pretrained(
        tmp_path / "model", device_map="auto", max_memory={"cpu": size // 2, "disk": 10**9}, offload_folder=tmp_path / "off"
    )
    placements = offloaded.hf_device_map
    assert "disk" in placements.values()
    assert all(not name.startswith("rrgs.") or name.count(".") == 1 for name in placements)  # rrgs, rrgs.N at most
    torch.testing.assert_close(run(offloaded, images), run(model, images), rtol=1e-6, atol=1e-6)


def test_unknown_forward_keywords_are_errors(model, images):
    with pytest.raises(TypeError, match="'labels'"):
        model(images, labels=images)  # the model computes no loss (modeling_mirnet.losses): not silently loss=None
    with pytest.raises(TypeError, match="output_attentions"):
        model(images, output_attentions=True)
    # no **kwargs: the Trainer then passes no loss keywords (num_items_in_batch) the model does not take
    kinds = {p.kind for p in inspect.signature(MIRNetModel.forward).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds


def test_model_takes_the_processor_output_as_keywords(model):
    inputs = MIRNetImageProcessor(size_divisor=model.config.size_divisor)(random_image(13, 18))
    out = model(**inputs)
    assert out.reconstruction.shape == inputs["pixel_values"].shape
