"""Training: the LightningModule, losses and batch collation."""
