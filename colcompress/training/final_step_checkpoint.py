"""Step checkpoints that always include the final step of training."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class FinalStepCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, plus a checkpoint of the step training ends on.

    With ``every_n_train_steps`` Lightning saves nothing at the end of a run whose
    ``max_steps`` is not a multiple of it, and ``save_last="link"`` then points
    ``last.ckpt`` at the newest step checkpoint: weights older than the model that was
    trained and evaluated. Here training's end is saved like any other step (top-k
    rotation, then ``last.ckpt``), so ``last.ckpt`` holds the final weights.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
        super().on_train_end(trainer, pl_module)
