"""Backbones two methods share, one implementation each: the ViT (:mod:`.vit`), the BERT
text encoder with optional cross-attention (:mod:`.bert`) and the image stems in front of
a ViT (:mod:`.stems`: conv and EfficientNet-Lite0 stems, and position-embedding
resizing). Plain ``nn.Module``s: no files, pipelines or image handling.
"""
