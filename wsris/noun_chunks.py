"""Deprecated alias of :mod:`wsris.methods.chunk.noun_chunks`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.chunk.noun_chunks")
