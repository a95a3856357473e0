"""Encoders, projection, scoring: the late-interaction model."""
