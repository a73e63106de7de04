"""Deprecated alias of :mod:`wsris.blocks.gradcam`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.blocks.gradcam")
