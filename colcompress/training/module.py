"""The LightningModule that trains a late-interaction retriever with a compressor."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor

from colcompress.compressors.base import Compressed
from colcompress.models.backbone import freeze_bottom
from colcompress.models.colbert import ColBERT
from colcompress.training.collate import TrainBatch
from colcompress.training.distributed import gather_padded, widen_local_columns
from colcompress.training.losses import (
    contrastive_loss,
    distillation_loss,
    own_candidates,
    pair_distillation_loss,
)

log = logging.getLogger(__name__)


def warmup_then_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor at optimizer step ``step`` (0-based) of ``total``.

    ``(step + 1) / warmup`` during the warm-up, so the first step already learns, then
    linear decay ``(total - step) / (total - warmup)`` to 0. transformers'
    ``get_linear_schedule_with_warmup`` is the same from step ``warmup`` on but ramps
    ``step / warmup``: its first step has learning rate 0, which would change every
    trained model (tests/unit/test_training.py compares the two).
    """
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(total - warmup, 1))


class RetrievalModule(L.LightningModule):
    """Trains ``scores = MaxSim(Q, compress(D))`` with contrastive and/or distillation loss.

    Parameters
    ----------
    model : ColBERT
        The retriever (its compressor is trained jointly when it has parameters).
    lr : float
        Peak learning rate of the backbone.
    projection_lr : float or None
        Learning rate of the projection and of every other parameter outside the
        encoders and the compressor (None: ``lr``).
    compressor_lr : float or None
        Learning rate of the compressor's own parameters (SeqResize's MLP, MemTok's
        memory tokens, AGC's universal queries; None: ``projection_lr``). New
        parameters on a trained encoder need a larger step than the encoder's.
    weight_decay : float
    warmup_steps : int
        Linear warm-up, then linear decay to 0 over the run.
    temperature : float
        Softmax temperature of the student scores.
    contrastive_weight, distillation_weight : float
        Loss mixture; distillation (KL over each query's candidates) needs teacher
        scores (from a file through the data module or from ``teacher``).
    pair_distillation_weight : float
        Weight of the mean squared error between the student's and the teacher's
        score of every (query, candidate) pair (:func:`pair_distillation_loss`); with
        the uncompressed model as ``teacher``, the compressed scores learn to match
        the full index's MaxSim. Needs teacher scores too.
    teacher : ColBERT or None
        A frozen teacher model scoring each query's candidates on the fly.
    teacher_temperature : float
    model_config : dict or None
        The model's config, stored in checkpoints so they can be rebuilt.
    gather_negatives : bool
        Under DDP, score every query against the documents of *all* devices (the
        gather keeps gradients for the local rows), so the in-batch negative pool
        grows with the number of devices. The identity on one device.
    freeze_layers : int
        Freeze the embeddings and the first ``freeze_layers`` layers of every encoder
        of the model (:func:`~colcompress.models.backbone.freeze_bottom`; a query and
        a document encoder alike); 0 trains them all.
    freeze_encoder_steps : int
        Two-stage training: for the first ``freeze_encoder_steps`` optimizer steps
        only the compressor's parameters learn (the backbone and the projection get
        no gradient, so AdamW leaves them as they are); from then on everything
        not frozen by ``freeze_layers`` learns. 0 trains everything from the start;
        a compressor without parameters ignores it (with a warning), so one recipe
        can cover every compressor.
    """

    def __init__(
        self,
        model: ColBERT,
        lr: float = 3e-5,
        projection_lr: float | None = None,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        temperature: float = 1.0,
        contrastive_weight: float = 1.0,
        distillation_weight: float = 0.0,
        teacher: ColBERT | None = None,
        teacher_temperature: float = 1.0,
        model_config: dict[str, Any] | None = None,
        gather_negatives: bool = True,
        freeze_layers: int = 0,
        pair_distillation_weight: float = 0.0,
        freeze_encoder_steps: int = 0,
        compressor_lr: float | None = None,
    ) -> None:
        super().__init__()
        if max(contrastive_weight, distillation_weight, pair_distillation_weight) <= 0:
            raise ValueError(
                "training needs contrastive_weight, distillation_weight or "
                "pair_distillation_weight > 0"
            )
        if freeze_encoder_steps < 0:
            raise ValueError(
                f"training.freeze_encoder_steps must be >= 0, got {freeze_encoder_steps}"
            )
        if freeze_encoder_steps and not any(p.requires_grad for p in model.compressor.parameters()):
            log.warning(
                "training.freeze_encoder_steps=%d ignored: %s has no parameters to train "
                "alone, so the encoder trains from the first step",
                freeze_encoder_steps,
                type(model.compressor).__name__,
            )
            freeze_encoder_steps = 0
        for encoder in model.encoders:
            freeze_bottom(encoder.model, freeze_layers)
        self.model = model
        self.freeze_encoder_steps = freeze_encoder_steps
        # the backbone and projection parameters that train once the encoder is unfrozen
        self._encoder_params = [
            p
            for module in (*model.encoders, *model.projections)
            for p in module.parameters()
            if p.requires_grad
        ]
        # Not registered as a submodule: the teacher is frozen, is not saved in this
        # module's checkpoints and is moved to the device in on_fit_start.
        self.__dict__["teacher"] = teacher
        self._resumed_rng_states: dict[str, Any] | None = None
        if teacher is not None:
            teacher.requires_grad_(False).eval()
        self.lr = lr
        self.projection_lr = projection_lr or lr
        self.compressor_lr = compressor_lr or self.projection_lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.temperature = temperature
        self.contrastive_weight = contrastive_weight
        self.distillation_weight = distillation_weight
        self.pair_distillation_weight = pair_distillation_weight
        self.teacher_temperature = teacher_temperature
        self.model_config = model_config or {}
        self.gather_negatives = gather_negatives

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    def on_train_batch_start(self, batch: TrainBatch, batch_idx: int) -> None:
        """Freeze or unfreeze the backbone and projection (``freeze_encoder_steps``)."""
        trainable = self.global_step >= self.freeze_encoder_steps
        for p in self._encoder_params:
            p.requires_grad_(trainable)

    def _teacher_scores(self, batch: TrainBatch) -> Tensor | None:
        if batch.teacher_scores is not None:
            return batch.teacher_scores
        if self.teacher is None:
            return None
        with torch.no_grad():
            q = self.teacher.encode_queries(batch.queries)
            d = self.teacher.encode_documents(batch.docs)
            return own_candidates(self.teacher.score(q, d), batch.group_size)

    def training_step(self, batch: TrainBatch, batch_idx: int) -> Tensor:
        queries = self.model.encode_queries(batch.queries)
        docs = self.model.encode_documents(batch.docs)
        n_local = docs.vectors.shape[0]
        if self.gather_negatives:
            pool = gather_padded(docs.vectors, docs.mask)
            everyone = Compressed(pool.vectors, pool.mask)
            offset = pool.offset
        else:
            everyone, offset = docs, 0
        # [B, sum over devices of B*G]; rolled so this device's documents come first
        scores = self.model.score(queries, everyone).roll(-offset, 1)
        local = scores[:, :n_local]  # [B, B*G]
        terms: dict[str, Tensor] = {}
        if self.contrastive_weight > 0:
            exclude = widen_local_columns(batch.false_negatives, offset, scores.shape[1])
            terms["contrastive"] = self.contrastive_weight * contrastive_loss(
                scores,
                batch.group_size,
                self.temperature,
                None if exclude is None else exclude.roll(-offset, 1),
            )
        if self.distillation_weight > 0 or self.pair_distillation_weight > 0:
            teacher = self._teacher_scores(batch)
            if teacher is None:
                raise ValueError(
                    "training.distillation_weight or pair_distillation_weight > 0 needs "
                    "teacher scores: set dataset.teacher_scores (a score file) or "
                    "training.teacher_ckpt"
                )
            own, teacher = own_candidates(local, batch.group_size), teacher.to(scores.dtype)
            if self.distillation_weight > 0:
                terms["distillation"] = self.distillation_weight * distillation_loss(
                    own, teacher, self.temperature, self.teacher_temperature
                )
            if self.pair_distillation_weight > 0:
                terms["pair_distillation"] = self.pair_distillation_weight * (
                    pair_distillation_loss(own, teacher)
                )
        terms.update(self.model.compressor.regularization(docs))
        loss = torch.stack(list(terms.values())).sum()
        bs = len(batch.queries)
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), batch_size=bs)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        backbone = [p for encoder in self.model.encoders for p in encoder.parameters()]
        backbone_ids = {id(p) for p in backbone}
        compressor = list(self.model.compressor.parameters())
        own_ids = backbone_ids | {id(p) for p in compressor}
        head = [p for p in self.model.parameters() if id(p) not in own_ids]
        groups = [
            {"params": [p for p in backbone if p.requires_grad], "lr": self.lr},
            {"params": [p for p in head if p.requires_grad], "lr": self.projection_lr},
            {"params": [p for p in compressor if p.requires_grad], "lr": self.compressor_lr},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.warmup_steps, total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(warmup_then_decay, warmup=warmup, total=total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the model config and torch's random states (dropout draws from them)."""
        checkpoint["colcompress_model_config"] = self.model_config
        checkpoint["torch_rng_states"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["torch_rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the checkpoint's random states for :meth:`on_train_start`."""
        self._resumed_rng_states = checkpoint.get("torch_rng_states")

    def on_train_start(self) -> None:
        """Restore a resumed checkpoint's random states, so dropout draws what the first
        run drew. Applied here, after Lightning has made the training data iterator
        (``DataLoader`` draws its base seed from torch's generator then)."""
        states, self._resumed_rng_states = self._resumed_rng_states, None
        if states is None:
            return
        torch.set_rng_state(states["cpu"])
        if "cuda" in states and torch.cuda.device_count() == len(states["cuda"]):
            torch.cuda.set_rng_state_all(states["cuda"])
