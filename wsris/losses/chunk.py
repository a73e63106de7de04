"""Deprecated alias of :mod:`wsris.methods.chunk.losses`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.chunk.losses")
