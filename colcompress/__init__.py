"""colcompress: multi-vector (late-interaction) index compression research framework."""

__version__ = "0.1.0"
