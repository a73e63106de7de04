"""Deprecated alias of :mod:`wsris.methods.chunk.convert`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.chunk.convert")
