"""Inference-time methods (Grad-CAM pipelines, refinement, mask proposals)."""
