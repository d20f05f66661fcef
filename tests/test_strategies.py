"""Freezing is the product: these tests pin down that frozen means frozen, after real optimizer steps."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from fakes import random_loader, snapshot, tiny_trainer
from translearn.errors import UserError
from translearn.module import TransferModule
from translearn.strategies import (
    NEVER,
    AutoRGN,
    Finetune,
    FirstK,
    Freeze,
    FreezePolicy,
    Gradual,
    LpFt,
    Surgical,
)

# (library, model, input side): one of each stage layout, for both libraries. timm's ViT insists on 224 px.
FAMILIES = [
    ("torchvision", "resnet18", 32),
    ("torchvision", "mobilenet_v3_small", 32),
    ("torchvision", "convnext_tiny", 32),
    ("timm", "resnet18", 32),
    ("timm", "convnext_atto", 32),
    ("timm", "vit_tiny_patch16_224", 224),
]
# Aggressive settings make any leak visible: momentum and weight decay move weights with zero gradients
# (modules take them with decay_norm_and_bias=True, so norms and biases decay too).
HOT_SGD = {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
HOT_ADAMW = {"_target_": "torch.optim.AdamW", "lr": 0.01, "weight_decay": 0.1}
# A schedule under which no group's LR is ever 0: a waiting stage is held by its dropped gradients alone.
WARMUP_COSINE = {
    "_target_": "torch.optim.lr_scheduler.SequentialLR",
    "milestones": [2],
    "schedulers": [
        {"_target_": "torch.optim.lr_scheduler.LinearLR", "start_factor": 0.5, "total_iters": 2},
        {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": 4, "eta_min": 0.001},
    ],
}


def make_module(
    arch: str, policy: FreezePolicy, classes: int = 3, library: str = "torchvision", **kwargs
) -> TransferModule:
    torch.manual_seed(0)
    settings = {"optimizer": HOT_SGD, "scheduler": None, "decay_norm_and_bias": True, **kwargs}
    return TransferModule(
        arch, weights="none", library=library, num_classes=classes, policy=policy, **settings
    )


def frozen_forever(module: TransferModule, epochs: float = NEVER) -> tuple[set[str], set[str]]:
    """(parameter names, buffer names) inside stages that stay frozen through the first ``epochs`` epochs."""
    params, buffers = set(), set()
    prefix = "net.model."
    for i, stage in enumerate(module.net.stages):
        if module.plan.unfreeze[i] < epochs:
            continue
        for name in stage.modules:
            sub = module.net.model.get_submodule(name)
            params |= {f"{prefix}{name}.{n}" for n, _ in sub.named_parameters()}
            buffers |= {f"{prefix}{name}.{n}" for n, _ in sub.named_buffers()}
        params |= {f"{prefix}{n}" for n in stage.params}
    return params, buffers


def policies() -> list[FreezePolicy]:
    return [Finetune(), Freeze(), FirstK(k=2), Gradual(start=1)]


def newer_policies() -> list[FreezePolicy]:
    """Surgical with a gap (a frozen stage between two trained ones), LP-FT past its probe, Auto-RGN."""
    return [Surgical(stages=[2, 4]), LpFt(probe_epochs=1), AutoRGN()]


def _family_id(family: tuple[str, str, int]) -> str:
    return f"{family[0]}-{family[1]}"


def _cases() -> list:
    """Every policy on every family with BatchNorm frozen; timm's families with bn=train as well."""
    cases = []
    for family in FAMILIES:
        modes = ("frozen", "train") if family[0] == "timm" else ("frozen",)
        # The newer policies run on two families (a BatchNorm CNN and a LayerNorm one, both libraries), bn
        # frozen: what they add is which stages train, which the other policies' cases cover across layouts.
        newer = newer_policies() if family in (FAMILIES[0], FAMILIES[4]) else []
        for bn in modes:
            for policy in [*policies(), *(newer if bn == "frozen" else [])]:
                policy.bn = bn
                heavy = [pytest.mark.heavy] if family[2] > 64 else []  # ViT at 224 px: make test-all
                case_id = f"{_family_id(family)}-{policy.name}-bn={bn}"
                cases.append(pytest.param(family, policy, id=case_id, marks=heavy))
    return cases


@pytest.mark.parametrize(("family", "policy"), _cases())
def test_frozen_tensors_bit_identical_after_real_steps(
    family: tuple[str, str, int], policy: FreezePolicy
) -> None:
    """Also: the optimizer holds exactly the trainable parameters, each once (one fit serves both).

    With ``bn=train`` frozen BatchNorm running statistics adapt (the 2017 recipe) and everything else
    frozen stays bit-identical.
    """
    library, arch, side = family
    module = make_module(arch, policy, library=library)
    before = snapshot(module)
    n, batch = (8, 4) if side > 64 else (16, 8)
    trainer = tiny_trainer(
        epochs=2, batches=2
    )  # two epochs: a validation loop and Lightning's train() between
    trainer.fit(
        module, random_loader(n, side=side, batch=batch), random_loader(n, side=side, batch=batch, seed=1)
    )
    in_optimizer = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
    assert len(in_optimizer) == len({id(p) for p in in_optimizer}), "a parameter sits in two groups"
    assert {id(p) for p in in_optimizer} == {id(p) for p in module.parameters() if p.requires_grad}

    module.train()  # an explicit train() must not revive frozen BatchNorm ...
    with torch.no_grad():
        module(torch.randn(2, 3, side, side))  # ... through a forward pass in training mode
    after = module.state_dict()
    frozen_params, frozen_buffers = frozen_forever(module, epochs=2)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    if policy.name not in ("finetune", "lp_ft", "auto_rgn"):  # the test must cover frozen tensors
        # (LayerNorm nets have no buffers; lp_ft's probe phase has its own test)
        assert frozen_params and (frozen_buffers or not has_bn)
    if policy.bn == "train":  # frozen running statistics adapt; nothing else frozen moves
        stats = {b for b in frozen_buffers if b.endswith(("running_mean", "running_var"))}
        assert all(not torch.equal(before[b], after[b]) for b in stats), "bn=train must adapt running stats"
        frozen_buffers = (
            frozen_buffers - stats - {b for b in frozen_buffers if b.endswith("num_batches_tracked")}
        )

    for name in frozen_params | frozen_buffers:
        assert torch.equal(before[name], after[name]), f"{arch}/{policy.name}: frozen {name} moved"
    for name, p in module.named_parameters():
        if name in frozen_params:
            assert p.grad is None, name
    never, _ = frozen_forever(module)  # requires_grad is off exactly where the stage never trains
    assert {n for n, p in module.named_parameters() if not p.requires_grad} == never
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    # Gradual only reaches the top stage in epoch 1; everything else that trains has moved.
    moved = {n for n in trainable if not torch.equal(before[n], after[n])}
    top = tuple(f"net.model.{m}." for m in (*module.net.stages[-1].modules, module.net.head_name))
    expected = trainable if policy.name != "gradual" else {n for n in trainable if n.startswith(top)}
    if policy.name == "auto_rgn":  # at random init a tensor's scaled step may fall below float resolution
        # (a 1e-6 layer scale sets a huge maximum), so ask only that every stage and the head moved
        stages = [*module.net.stages[0].modules, *(m for st in module.net.stages[1:] for m in st.modules)]
        expected = {
            next(n for n in sorted(moved) if n.startswith(f"net.model.{m}."))
            for m in (*stages, module.net.head_name)
            if any(n.startswith(f"net.model.{m}.") for n in trainable)
        }
    assert expected <= moved, (
        f"{library} {arch}/{policy.name}: trainable tensors that did not move: {sorted(expected - moved)[:5]}"
    )


def test_freeze_trains_only_the_new_head_of_resnet18() -> None:
    module = make_module("resnet18", Freeze())
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable == ["net.model.fc.weight", "net.model.fc.bias"]
    assert module.net.head.out_features == 3


def test_bn_train_updates_frozen_running_stats_and_nothing_else() -> None:
    module = make_module("resnet18", Freeze(bn="train"))
    before = snapshot(module)
    tiny_trainer(epochs=1, batches=2).fit(module, random_loader(), random_loader(seed=1))
    after = module.state_dict()
    params, buffers = frozen_forever(module)
    stats = {b for b in buffers if b.endswith(("running_mean", "running_var"))}
    assert stats and all(not torch.equal(before[b], after[b]) for b in stats), (
        "bn=train must adapt running stats"
    )
    assert all(torch.equal(before[p], after[p]) for p in params), "bn=train must not move frozen weights"


def test_frozen_bn_stays_in_eval_mode_after_train() -> None:
    module = make_module("resnet18", FirstK(k=3))
    module.train()
    frozen_bn = [
        m
        for i in range(3)
        for s in module.net.stage_modules(i)
        for m in s.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    live_bn = [m for s in module.net.stage_modules(4) for m in s.modules() if isinstance(m, nn.BatchNorm2d)]
    assert frozen_bn and not any(m.training for m in frozen_bn)
    assert live_bn and all(m.training for m in live_bn)


def test_a_module_is_born_in_its_first_epochs_modes_so_lightnings_summary_tells_the_truth() -> None:
    """Lightning's model summary reads the modes before anything calls train(): frozen BN must be eval."""
    from pytorch_lightning.utilities.model_summary import ModelSummary

    module = make_module("resnet18", Freeze())
    bn = [m for m in module.net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and not any(m.training for m in bn)
    assert module.training and module.net.head.training
    summary = ModelSummary(module, max_depth=-1)
    eval_modules = sum(1 for m in module.modules() if not m.training)
    assert summary.total_training_modes["eval"] == eval_modules >= len(bn)
    finetune = make_module("resnet18", Finetune())
    assert all(m.training for m in finetune.modules())


def test_the_summary_counts_flops_as_torchvision_publishes_them_and_the_head_alone_on_features() -> None:
    """Lightning's summary printed "Total FLOPs: 0": the module now hands it an eval-size example input.

    torchvision publishes ResNet18's cost at 224 px as 1.814 GFLOPS (multiply-adds); torch's counter
    counts two operations per multiply-add. On stored head inputs a step runs the linear head alone.
    """
    import torchvision
    from pytorch_lightning.utilities.model_summary import ModelSummary

    published = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]
    module = make_module("resnet18", Freeze(), classes=1000, preprocessing={"crop": 224})
    assert module.example_input_array.shape == (1, 3, 224, 224)
    assert ModelSummary(module).total_flops / 2e9 == pytest.approx(published, rel=0.01)

    cached = make_module("resnet18", Freeze(), classes=5, preprocessing={"crop": 32})
    cached.use_cached_features(cached.net.num_stages, shape=(512,))
    assert ModelSummary(cached).total_flops == 2 * 512 * 5
    assert make_module("resnet18", Freeze(), compile=True).example_input_array is None


def test_no_weight_decay_on_norm_and_bias_by_default() -> None:
    torch.manual_seed(0)
    module = TransferModule(
        "resnet18",
        weights="none",
        num_classes=3,
        optimizer={"_target_": "torch.optim.SGD", "weight_decay": 0.5},
    )
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD)
    for group in optimizer.param_groups:
        assert group["lr"] == 1e-3  # SGD's own default: the config gave none
        for p in group["params"]:
            assert (group["weight_decay"] == 0.0) == (p.ndim <= 1)


@pytest.mark.parametrize("k", [0, 1, 5])
def test_first_k_boundaries(k: int) -> None:
    module = make_module("resnet18", FirstK(k=k))
    assert module.net.num_stages == 5
    stage_trainable = [all(p.requires_grad for p in module.net.stage_parameters(i)) for i in range(5)]
    stage_frozen = [not any(p.requires_grad for p in module.net.stage_parameters(i)) for i in range(5)]
    assert stage_frozen == [i < k for i in range(5)]
    assert stage_trainable == [i >= k for i in range(5)]
    assert all(p.requires_grad for p in module.net.head_parameters())
    if k == 1:  # the stem is conv1 + bn1
        assert {n for n, p in module.net.model.named_parameters() if not p.requires_grad} == {
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
        }


def test_first_k_zero_equals_finetune_and_all_equals_freeze() -> None:
    def trainable(policy: FreezePolicy) -> list[str]:
        return [n for n, p in make_module("resnet18", policy).named_parameters() if p.requires_grad]

    assert trainable(FirstK(k=0)) == trainable(Finetune())
    assert trainable(FirstK(k=5)) == trainable(Freeze())


@pytest.mark.parametrize("k", [6, -1])
def test_first_k_out_of_range_is_a_clear_error(k: int) -> None:
    with pytest.raises(UserError, match=r"strategy.k"):
        make_module("resnet18", FirstK(k=k))


def test_gradual_unfreezes_at_exactly_the_configured_epochs() -> None:
    class Recorder(pl.Callback):
        def __init__(self) -> None:
            self.states: list[dict[str, torch.Tensor]] = []
            self.lrs: list[dict[str, float]] = []

        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.states.append(snapshot(module))

    module = make_module("resnet18", Gradual(epochs=[1, 2]))
    requires_grad = {n: p.requires_grad for n, p in module.named_parameters()}
    start = snapshot(module)
    recorder = Recorder()
    tiny_trainer(epochs=3, batches=2, callbacks=[recorder]).fit(
        module, random_loader(), random_loader(seed=1)
    )

    def moved(prefix: str, epoch: int) -> bool:
        earlier = start if epoch == 0 else recorder.states[epoch - 1]
        names = [n for n in start if n.startswith(prefix) and "num_batches" not in n]
        return any(not torch.equal(earlier[n], recorder.states[epoch][n]) for n in names)

    assert [moved("net.model.fc.", e) for e in range(3)] == [True, True, True]
    assert [moved("net.model.layer4.", e) for e in range(3)] == [False, True, True]
    assert [moved("net.model.layer3.", e) for e in range(3)] == [False, False, True]
    for prefix in ("net.model.layer2.", "net.model.layer1.", "net.model.conv1.", "net.model.bn1."):
        assert not any(moved(prefix, e) for e in range(3)), prefix
    # No LR gate: a waiting stage's group has its full LR from epoch 0 and still stood still above (its
    # gradients are dropped); groups never appear or vanish.
    assert [lrs["layer4"] for lrs in recorder.lrs] == [0.05, 0.05, 0.05]
    assert [lrs["layer3"] for lrs in recorder.lrs] == [0.05, 0.05, 0.05]
    assert len({tuple(lrs) for lrs in recorder.lrs}) == 1
    # requires_grad is decided once, before the optimizer (and any DDP wrap) exists.
    assert {n: p.requires_grad for n, p in module.named_parameters()} == requires_grad


@pytest.mark.parametrize("optimizer", [HOT_SGD, HOT_ADAMW], ids=["sgd", "adamw"])
def test_a_gated_stage_has_no_optimizer_state_until_it_unfreezes(optimizer: dict) -> None:
    """A stage waiting to unfreeze: bit-identical and absent from the optimizer's state until its epoch.

    Nothing holds it but :meth:`FreezePlan.gate_gradients`: its group's LR is never 0 here (warm-up, then
    cosine to a floor), the optimizers have momentum (SGD) or moments (AdamW) and weight decay on every
    tensor. A gradient reaching the optimizer even once would move the weights through weight decay and
    leave a momentum buffer or Adam moments that jolt the stage at its unfreeze epoch.
    """

    class AtEpochStart(pl.Callback):
        def __init__(self) -> None:
            self.seen: list[tuple[int, int]] = []
            self.states: list[dict[str, torch.Tensor]] = []
            self.lrs: list[dict[str, float]] = []

        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            state = trainer.optimizers[0].state
            layer4 = [p for n, p in module.named_parameters() if n.startswith("net.model.layer4.")]
            layer3 = [p for n, p in module.named_parameters() if n.startswith("net.model.layer3.")]
            self.seen.append((sum(p in state for p in layer4), sum(p in state for p in layer3)))
            self.states.append(snapshot(module))
            self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})

    module = make_module("resnet18", Gradual(epochs=[2, 3]), optimizer=optimizer, scheduler=WARMUP_COSINE)
    start = snapshot(module)
    recorder = AtEpochStart()
    tiny_trainer(epochs=4, batches=2, callbacks=[recorder]).fit(
        module, random_loader(), random_loader(seed=1)
    )
    layer4 = sum(1 for n, _ in module.named_parameters() if n.startswith("net.model.layer4."))
    # epoch 0, 1: nothing for either; epoch 2 (layer4 unfreezes): still nothing; epoch 3: layer4 has state
    assert recorder.seen == [(0, 0), (0, 0), (0, 0), (layer4, 0)]
    assert all(lrs["layer4"] > 0 and lrs["layer3"] > 0 for lrs in recorder.lrs), recorder.lrs
    for prefix, unfreeze in (("net.model.layer4.", 2), ("net.model.layer3.", 3)):
        names = [n for n in start if n.startswith(prefix)]  # parameters and BatchNorm buffers
        for epoch in range(unfreeze + 1):  # the state at the start of epoch `unfreeze` is the last untouched
            moved = [n for n in names if not torch.equal(start[n], recorder.states[epoch][n])]
            assert not moved, (
                f"{prefix} moved before its unfreeze epoch {unfreeze} (epoch {epoch}): {moved[:3]}"
            )
    final = snapshot(module)
    assert any(not torch.equal(start[n], final[n]) for n in start if n.startswith("net.model.layer4."))


def test_lr_decay_gives_discriminative_learning_rates() -> None:
    module = make_module("resnet18", Finetune(lr_decay=0.5))
    lrs = {g["name"]: g["lr"] for g in module.plan.param_groups(lr=1.0)}
    assert lrs["head"] == 1.0
    assert lrs["layer4"] == 0.5
    assert lrs["layer3"] == 0.25
    assert lrs["stem"] == 0.5**5


def test_bad_policy_values_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"strategy\.bn"):
        Freeze(bn="sometimes")
    with pytest.raises(UserError, match=r"strategy\.epochs"):
        Gradual(epochs=[3, 1])
    with pytest.raises(UserError, match="lr_decay"):
        Freeze(lr_decay=0)


def test_surgical_trains_exactly_its_stages_and_names_them_when_out_of_range() -> None:
    module = make_module("resnet18", Surgical(stages=[4, 2]))
    assert module.plan.summary() == (
        "stem (frozen), layer1 (train), layer2 (frozen), layer3 (train), layer4 (frozen), head (train)"
    )
    with pytest.raises(
        UserError, match=r"strategy\.stages=\[3, 6\]: resnet18 has 5 stages \(1=stem, .*5=layer4\)"
    ):
        make_module("resnet18", Surgical(stages=[6, 3]))
    for stages in (None, []):
        with pytest.raises(UserError, match="strategy=surgical needs the stages to train"):
            Surgical(stages=stages)
    with pytest.raises(UserError, match="stage numbers >= 1"):
        Surgical(stages=[0])


def test_lp_ft_probes_then_finetunes_everything_from_the_probed_head() -> None:
    class Epochs(pl.Callback):
        def __init__(self) -> None:
            self.states: list[dict[str, torch.Tensor]] = []

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.states.append(snapshot(module))

    module = make_module("resnet18", LpFt(probe_epochs=2))
    start, recorder = snapshot(module), Epochs()
    tiny_trainer(epochs=3, batches=2, callbacks=[recorder]).fit(
        module, random_loader(), random_loader(seed=1)
    )
    body = [n for n in start if n.startswith("net.model.") and not n.startswith("net.model.fc.")]
    for epoch in (0, 1):  # the probe: the head alone moves; every stage (and its BatchNorm) stands still
        assert all(torch.equal(start[n], recorder.states[epoch][n]) for n in body), epoch
        assert not torch.equal(start["net.model.fc.weight"], recorder.states[epoch]["net.model.fc.weight"])
    moved = [n for n in body if not torch.equal(recorder.states[1][n], recorder.states[2][n])]
    assert any(n.startswith("net.model.conv1.") for n in moved) and any("layer4" in n for n in moved)
    with pytest.raises(
        UserError, match=r"strategy\.probe_epochs=3 leaves no fine-tuning epoch in trainer\.max_epochs=3"
    ):
        LpFt(probe_epochs=3).check_epochs(3)
    with pytest.raises(UserError, match="probe_epochs must be an integer >= 1"):
        LpFt(probe_epochs=0)


def test_auto_rgn_scales_each_tensor_by_its_relative_gradient_norm_and_restores_the_schedule() -> None:
    module = make_module("resnet18", AutoRGN())
    groups = module.plan.param_groups(lr=0.1)
    assert all(len(g["params"]) == 1 for g in groups)  # one tensor per group: its own LR
    assert len(groups) == sum(1 for p in module.parameters() if p.requires_grad)
    optimizer = torch.optim.SGD(groups, lr=0.1)
    x, y = next(iter(random_loader()))
    torch.nn.functional.cross_entropy(module(x), y).backward()
    params = [g["params"][0] for g in optimizer.param_groups]
    rgn = [float(p.grad.norm() / p.norm()) if p.norm() > 0 else None for p in params]  # zero: a fresh BN bias
    top = max(r for r in rgn if r is not None)
    per_stage = AutoRGN.scale(optimizer)
    scales = [g["lr"] / 0.1 for g in optimizer.param_groups]
    assert scales == pytest.approx([1.0 if r is None else r / top for r in rgn], rel=1e-5)
    assert max(scales) == pytest.approx(1.0) and min(scales) > 0.0
    assert set(per_stage) == {"stem", "layer1", "layer2", "layer3", "layer4", "head"}
    assert all(0.0 <= v <= 1.0 for v in per_stage.values())
    AutoRGN.restore(optimizer)
    assert all(g["lr"] == 0.1 and "scheduled_lr" not in g for g in optimizer.param_groups)


def test_auto_rgn_in_a_fit_logs_its_choice_per_stage_and_keeps_the_scheduled_lr() -> None:
    class Seen(pl.Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
            self.lrs.append(sorted({g["lr"] for g in trainer.optimizers[0].param_groups}))

    module = make_module("resnet18", AutoRGN())
    seen = Seen()
    trainer = tiny_trainer(epochs=1, batches=2, callbacks=[seen])
    trainer.fit(module, random_loader(), random_loader(seed=1))
    assert seen.lrs == [[0.05], [0.05]]  # scaled only inside the step, then the scheduled LR again
    logged = {k for k in trainer.logged_metrics if k.startswith("rgn/")}
    assert logged == {"rgn/stem", "rgn/layer1", "rgn/layer2", "rgn/layer3", "rgn/layer4", "rgn/head"}
