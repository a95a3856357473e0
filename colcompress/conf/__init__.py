"""The Hydra configs (``config.yaml`` and its groups), read by ``colcompress.run`` as
``pkg://colcompress.conf``: from the source tree and from an installed wheel alike."""
