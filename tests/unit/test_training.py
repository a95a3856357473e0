"""Collation, false-negative masking and the training step of RetrievalModule."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from colcompress.data.beir import Doc
from colcompress.data.datamodule import TrainExample
from colcompress.job import _teacher
from colcompress.models.colbert import ColBERT
from colcompress.training.collate import TrainCollator
from colcompress.training.module import RetrievalModule

TINY = {
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _example(qid: str, docs: list[str], teacher: list[float] | None = None) -> TrainExample:
    return TrainExample(
        query=f"query {qid}",
        docs=[Doc("", f"text of {d}") for d in docs],
        teacher_scores=teacher,
        qid=qid,
        doc_ids=docs,
    )


@pytest.fixture(scope="module")
def model() -> ColBERT:
    torch.manual_seed(0)
    return ColBERT(random_config=TINY, dim=16, doc_length=16)


def test_collator_groups_documents_and_masks_known_positives(model):
    positives = {"q1": {"d1", "d3"}, "q2": {"d3"}}
    examples = [_example("q1", ["d1", "n1"]), _example("q2", ["d3", "n2"])]
    batch = TrainCollator(model, positives.__getitem__)(examples)
    assert batch.group_size == 2
    assert len(batch.queries) == 2 and len(batch.docs) == 4
    # q1's positive d3 sits in q2's group: masked for q1 only; own group never masked
    expected = torch.tensor([[False, False, True, False], [False, False, False, False]])
    assert torch.equal(batch.false_negatives, expected)


def test_collator_without_positives_masks_nothing(model):
    batch = TrainCollator(model)([_example("q1", ["d1", "n1"]), _example("q2", ["d2", "n2"])])
    assert batch.false_negatives is None and batch.teacher_scores is None


def test_collator_refuses_ragged_groups(model):
    with pytest.raises(ValueError, match="same number of documents"):
        TrainCollator(model)([_example("q1", ["d1", "n1"]), _example("q2", ["d2"])])


def test_collator_carries_teacher_scores(model):
    batch = TrainCollator(model)([_example("q1", ["d1", "n1"], [3.0, 1.0])])
    assert batch.teacher_scores.tolist() == [[3.0, 1.0]]


def _fit(module: RetrievalModule, batches: list, steps: int) -> list[float]:
    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(module, train_dataloaders=loader)
    return losses


def test_contrastive_training_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = ColBERT(random_config=TINY, dim=16, doc_length=16)
    topics = ["vitamin", "cancer", "sleep", "coffee"]
    examples = [
        TrainExample(
            f"{t} risk",
            [Doc("", f"{t} risk study"), Doc("", f"{topics[i - 1]} diet")],
            None,
            t,
            [t, f"n{t}"],
        )
        for i, t in enumerate(topics)
    ]
    batch = TrainCollator(model)(examples)
    module = RetrievalModule(model, lr=2e-3, warmup_steps=0)
    losses = _fit(module, [batch] * 40, 40)
    # scores are sums over ~4 query tokens, so with temperature 1 the loss has a floor
    assert losses[-1] < 0.7 * losses[0]
    model.eval()
    with torch.no_grad():
        scores = model.score(
            model.encode_queries(batch.queries), model.encode_documents(batch.docs)
        )
    assert scores.argmax(1).tolist() == [0, 2, 4, 6]  # every positive ranks first


def test_distillation_needs_teacher_scores():
    torch.manual_seed(0)
    model = ColBERT(random_config=TINY, dim=16, doc_length=16)
    batch = TrainCollator(model)([_example("q1", ["d1", "n1"]), _example("q2", ["d2", "n2"])])
    module = RetrievalModule(model, contrastive_weight=0.0, distillation_weight=1.0)
    with pytest.raises(ValueError, match="teacher"):
        module.training_step(batch, 0)


@pytest.mark.slow
def test_distillation_with_a_teacher_model_follows_its_ranking():
    torch.manual_seed(0)
    teacher = ColBERT(random_config=TINY, dim=16, doc_length=16)
    student = ColBERT(random_config=TINY, dim=16, doc_length=16)
    examples = [_example(f"q{i}", [f"d{i}", f"n{i}", f"m{i}"]) for i in range(4)]
    batch = TrainCollator(student)(examples)
    module = RetrievalModule(
        student, lr=2e-3, contrastive_weight=0.0, distillation_weight=1.0, teacher=teacher
    )
    losses = _fit(module, [batch] * 40, 40)
    assert losses[-1] < 0.5 * losses[0]
    assert all(not p.requires_grad for p in teacher.parameters())


def test_frozen_layers_get_no_gradient_and_leave_the_optimizer():
    torch.manual_seed(0)
    model = ColBERT(random_config={**TINY, "num_hidden_layers": 3}, dim=16, doc_length=16)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = TrainCollator(model)([_example("q1", ["d1", "n1"]), _example("q2", ["d2", "n2"])])
    module = RetrievalModule(model, lr=1e-2, warmup_steps=0, freeze_layers=2)
    _fit(module, [batch] * 3, 3)
    frozen = ("encoder.model.embeddings.", "encoder.model.encoder.layer.0.")
    frozen += ("encoder.model.encoder.layer.1.",)
    for name, p in model.named_parameters():
        if name.startswith(frozen):
            assert not p.requires_grad and p.grad is None, name
            assert torch.equal(p, before[name]), name
        else:
            assert p.requires_grad, name
    trained = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("encoder.model.encoder.layer.2.") for n in trained)
    assert "projection.weight" in trained
    optimized = {id(p) for g in module.optimizers().optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("layers", [-1, 2])
def test_freeze_layers_out_of_range_names_the_option(layers):
    model = ColBERT(random_config=TINY, dim=16)
    with pytest.raises(ValueError, match=r"training.freeze_layers.*\[0, 1\]"):
        RetrievalModule(model, freeze_layers=layers)


def _teacher_cfg(ckpt: str | None, zero_shot: bool):
    return OmegaConf.create(
        {
            "model": {"backbone": "minilm", "query_length": 32, "doc_length": 300},
            "training": {"teacher_ckpt": ckpt, "teacher_zero_shot": zero_shot},
        }
    )


def test_zero_shot_teacher_is_the_multivector_baseline_model():
    student = ColBERT(random_config=TINY, dim=16, query_length=24, doc_length=40)
    assert _teacher(_teacher_cfg(None, False), student) is None
    teacher = _teacher(_teacher_cfg(None, True), student)
    assert teacher.dim == teacher.encoder.hidden_size == 384
    torch.testing.assert_close(teacher.projection.weight, torch.eye(384))
    assert not teacher.query_augmentation and teacher.skip_ids.numel() == 0
    # the student's lengths (a checkpoint format's come from the checkpoint)
    assert (teacher.query_length, teacher.doc_length) == (24, 40)
    with pytest.raises(ValueError, match="teacher_ckpt and training.teacher_zero_shot"):
        _teacher(_teacher_cfg("some.ckpt", True), student)


def test_a_loss_is_required():
    with pytest.raises(ValueError, match="contrastive_weight"):
        RetrievalModule(ColBERT(random_config=TINY, dim=16), contrastive_weight=0.0)


@pytest.mark.parametrize("max_steps", [3, 4])
def test_last_checkpoint_holds_the_final_step(tmp_path, max_steps: int):
    """Saving every 2 steps, a run of 3 steps must still leave step 3's weights in
    last.ckpt (Lightning alone links it to step 2); one step checkpoint is kept."""
    from lightning.pytorch.demos.boring_classes import BoringModel

    from colcompress.training.final_step_checkpoint import FinalStepCheckpoint

    checkpoint = FinalStepCheckpoint(
        dirpath=tmp_path,
        filename="step{step}",
        auto_insert_metric_name=False,
        every_n_train_steps=2,
        save_last="link",
        save_top_k=1,
    )
    model = BoringModel()
    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=[checkpoint],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == max_steps
    assert torch.equal(last["state_dict"]["layer.weight"], model.layer.weight.detach())
    assert sorted(p.name for p in tmp_path.glob("step*.ckpt")) == [f"step{max_steps}.ckpt"]


@pytest.mark.parametrize(("warmup", "total"), [(0, 7), (3, 10), (20, 170)])
def test_warmup_schedule_against_transformers(warmup: int, total: int):
    """The schedule equals transformers' linear warm-up/decay once warmed up; during the
    warm-up it is that schedule one step ahead (the first step does not have lr 0)."""
    from transformers import get_linear_schedule_with_warmup

    from colcompress.training.module import warmup_then_decay

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    library = get_linear_schedule_with_warmup(optimizer, warmup, total).lr_lambdas[0]
    for step in range(total + 1):
        expected = library(step + 1) if step < warmup else library(step)
        assert warmup_then_decay(step, warmup, total) == expected, step
    if warmup:
        assert library(0) == 0.0 and warmup_then_decay(0, warmup, total) == 1 / warmup


def test_freeze_encoder_steps_trains_only_the_compressor_first():
    from colcompress.compressors.memtok import MemTok

    torch.manual_seed(0)
    model = ColBERT(random_config=TINY, dim=16, doc_length=16, compressor=MemTok(2, 32))
    batch = TrainCollator(model)([_example("q1", ["d1", "n1"]), _example("q2", ["d2", "n2"])])
    module = RetrievalModule(model, lr=1e-2, warmup_steps=0, freeze_encoder_steps=2)
    snapshots: list[dict[str, torch.Tensor]] = []

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Snapshot()],
    )
    loader = torch.utils.data.DataLoader([batch] * 4, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(module, train_dataloaders=loader)
    encoder = [n for n in before if not n.startswith("compressor.")]
    assert "projection.weight" in encoder and len(encoder) > 10
    for step in (0, 1):  # frozen: only the memory tokens learn
        assert all(torch.equal(snapshots[step][n], before[n]) for n in encoder), step
        assert not torch.equal(snapshots[step]["compressor.memory"], before["compressor.memory"])
    changed = [n for n in encoder if not torch.equal(snapshots[3][n], snapshots[1][n])]
    assert "projection.weight" in changed
    assert any(n.startswith("encoder.model.encoder.layer.0.") for n in changed)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_encoder_steps_is_ignored_without_compressor_parameters(caplog):
    with caplog.at_level("WARNING", logger="colcompress.training.module"):
        module = RetrievalModule(ColBERT(random_config=TINY, dim=16), freeze_encoder_steps=3)
    assert module.freeze_encoder_steps == 0
    assert "freeze_encoder_steps=3 ignored: NoCompression has no parameters" in caplog.text


@pytest.mark.parametrize(("kl", "pair"), [(1.0, 0.0), (0.0, 1.0), (1.0, 0.5)])
def test_self_distillation_from_a_plain_teacher_runs(kl: float, pair: float):
    from colcompress.compressors.hpool import HPool

    torch.manual_seed(0)
    teacher = ColBERT(random_config=TINY, dim=16, doc_length=16)
    student = ColBERT(random_config=TINY, dim=16, doc_length=16, compressor=HPool(budget=3))
    student.load_state_dict(teacher.state_dict())
    examples = [_example(f"q{i}", [f"d{i} a b c d e", f"n{i} f g h i j"]) for i in range(2)]
    batch = TrainCollator(student)(examples)
    module = RetrievalModule(
        student,
        contrastive_weight=0.0,
        distillation_weight=kl,
        pair_distillation_weight=pair,
        teacher=teacher,
    )
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert student.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("projection_lr", "compressor_lr", "expected"),
    [(None, None, (1e-5, 1e-5)), (1e-3, None, (1e-3, 1e-3)), (1e-4, 1e-2, (1e-4, 1e-2))],
)
def test_each_parameter_gets_its_groups_learning_rate(projection_lr, compressor_lr, expected):
    from colcompress.compressors.memtok import MemTok

    model = ColBERT(random_config=TINY, dim=16, doc_length=16, compressor=MemTok(2, 32))
    module = RetrievalModule(
        model, lr=1e-5, projection_lr=projection_lr, compressor_lr=compressor_lr
    )
    module.trainer = L.Trainer(max_steps=10, logger=False, enable_progress_bar=False)
    optimizer = module.configure_optimizers()["optimizer"]
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in model.parameters())
    projection, compressor = expected
    for name, p in model.named_parameters():
        if name.startswith("compressor."):
            assert lr_of[id(p)] == compressor, name
        elif name.startswith("projection."):
            assert lr_of[id(p)] == projection, name
        else:
            assert lr_of[id(p)] == 1e-5, name
