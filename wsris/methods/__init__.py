"""The methods that ship with wsris, one folder each: ``chunk`` (Lee et al. 2023, on
ALBEF), ``sag`` (Shatter and Gather, Kim et al. 2023) and ``tris`` (Liu et al. 2023, on
CLIP).

Each folder holds everything only its method uses (model, layers, inference pipeline,
training objective and losses, converters and their ``wsris convert`` command) and
registers itself with :mod:`wsris.registry` on import. Nothing outside a method's folder
imports its modules: the rest of wsris reaches it through the registry.
"""
