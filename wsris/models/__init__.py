"""The networks: plain ``nn.Module``s with no files, pipelines or image handling.

``albef`` (ALBEF: ViT + BERT with cross-attention fusion), ``sag`` (Shatter and Gather),
``bert`` (the text encoder both use) and ``layers`` (shared image stems). Which method
builds which model is recorded in the method registry, :mod:`wsris.methods`.
"""
