"""Deprecated alias of :mod:`wsris.methods.chunk.objective`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.chunk.objective")
