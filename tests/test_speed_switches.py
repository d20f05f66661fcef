"""GPU switches that must not bend freezing: bf16 autocast, channels_last and torch.compile, every policy.

Run on the CPU here (bf16 autocast exists there too; compile uses the aot_eager backend, which traces with
Dynamo and AOTAutograd but skips C++ code generation): what they could break is the freezing contract,
not the speed, and that is the same on every device.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from fakes import random_loader, snapshot
from test_strategies import HOT_SGD, frozen_forever, policies
from translearn.module import TransferModule, channels_last_pays
from translearn.strategies import Freeze


def check_policy(policy, precision: str = "32-true", **model_kwargs) -> TransferModule:
    torch.manual_seed(0)
    module = TransferModule(
        "resnet18", weights="none", num_classes=3, policy=policy, optimizer=HOT_SGD, scheduler=None,
        decay_norm_and_bias=True, **model_kwargs,
    )  # fmt: skip
    before = snapshot(module)
    trainer = pl.Trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, precision=precision,
    )  # fmt: skip
    trainer.fit(module, random_loader(), random_loader(seed=1))
    after = module.state_dict()
    params, buffers = frozen_forever(module, epochs=2)
    for name in params | buffers:
        assert torch.equal(before[name], after[name]), f"{policy.name}: frozen {name} moved"
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    top = tuple(f"net.model.{m}." for m in (*module.net.stages[-1].modules, module.net.head_name))
    expected = trainable if policy.name != "gradual" else {n for n in trainable if n.startswith(top)}
    assert all(not torch.equal(before[n], after[n]) for n in expected), (
        f"{policy.name}: a trainable tensor stood still"
    )
    return module


@pytest.mark.slow
@pytest.mark.parametrize("policy", policies(), ids=lambda p: p.name)
def test_bf16_autocast_keeps_every_policy_exact(policy) -> None:
    check_policy(policy, precision="bf16-mixed")


@pytest.mark.slow
@pytest.mark.parametrize("policy", policies(), ids=lambda p: p.name)
def test_channels_last_and_compile_keep_every_policy_exact(policy) -> None:
    module = check_policy(policy, channels_last=True, compile="aot_eager")
    assert module._compiled is not None and module._compiled._orig_mod is module.net  # really compiled
    assert module.net.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(k.startswith(("net.", "train_", "val_", "test_")) for k in module.state_dict())  # plain names


@pytest.mark.parametrize(
    ("device", "precision", "crop", "nhwc"),
    [
        ("cpu", "32-true", 64, False),  # the offline default's size: NHWC measured 0.91x there
        ("cpu", "32-true", 128, True),
        ("cpu", "bf16-mixed", 224, True),
        ("cpu", "bf16-mixed", 64, True),  # under bf16 (AMX) NHWC measured 1.08x at 64 px too
        ("cuda", "bf16-mixed", 64, True),  # tensor cores
        ("cuda", "16-mixed", 224, True),
        ("cuda", "32-true", 224, False),
        ("mps", "32-true", 224, False),
    ],
)
def test_channels_last_auto_turns_on_where_it_was_measured_faster(device, precision, crop, nhwc) -> None:
    assert channels_last_pays(device, precision, crop) is nhwc


@pytest.mark.parametrize(
    ("device", "precision", "amx", "said"),
    [
        ("cpu", "32-true", True, True),
        ("cpu", "bf16-mixed", True, False),  # already on
        ("cpu", "32-true", False, False),  # no AMX: no bf16 matrix units, no measured gain
        ("cuda", "32-true", True, False),  # trainer=gpu chooses for GPUs
    ],
)
def test_an_fp32_run_on_a_cpu_with_amx_is_told_what_bf16_would_save(
    device, precision, amx, said, monkeypatch
) -> None:
    from translearn.module import precision_hint

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    hint = precision_hint(device, precision)
    assert (hint is not None) is said
    if said:
        assert "trainer.precision=bf16-mixed" in hint and "\n" not in hint


@pytest.mark.parametrize(("crop", "nhwc"), [(64, False), (128, True)])
def test_channels_last_auto_is_resolved_by_the_trainer_and_keeps_freezing_exact(crop, nhwc, caplog) -> None:
    """auto is decided at setup from the Trainer's device and precision and the crop, said once."""
    with caplog.at_level("INFO"):
        module = check_policy(Freeze(), channels_last="auto", preprocessing={"crop": crop})
    assert module.channels_last is nhwc
    weight = module.net.model.layer1[0].conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) is nhwc
    said = [r.getMessage() for r in caplog.records if "channels-last (NHWC) on" in r.getMessage()]
    assert len(said) == (1 if nhwc else 0)


def test_fp16_grad_scaler_ignores_gated_gradual_stages() -> None:
    """``16-mixed``: a gated stage's gradient may be inf; the scaler must not see it and skip the step.

    Lightning unscales (and checks for inf) before ``on_before_optimizer_step``, so the gate must act
    earlier, right after backward. CPU autocast supports fp16 and torch's GradScaler runs on the CPU,
    which is the same code path a GPU takes; Lightning itself maps ``16-mixed`` to bf16 on a CPU, so the
    plugin is built by hand here.
    """
    from pytorch_lightning.plugins.precision import MixedPrecision

    from translearn.strategies import Gradual

    torch.manual_seed(0)
    module = TransferModule(
        "resnet18", weights="none", num_classes=3, policy=Gradual(start=5), optimizer=HOT_SGD,
        scheduler=None, decay_norm_and_bias=True,
    )  # fmt: skip
    gated = module.net.model.layer4[1].conv2.weight  # unfreezes at epoch 5: requires_grad, but gated
    assert gated.requires_grad
    gated.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    head = module.net.model.fc.weight.detach().clone()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=0, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, plugins=[MixedPrecision("16-mixed", "cpu", scaler)],
    )  # fmt: skip
    trainer.fit(module, random_loader())
    assert scaler.get_scale() == 2.0**10, "the scaler saw the gated stage's inf and skipped steps"
    assert not torch.equal(head, module.net.model.fc.weight), "the head never stepped"
