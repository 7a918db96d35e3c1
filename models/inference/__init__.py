"""Inference: the `Predictor` seam over an artifact, and the batched passes beneath it."""
