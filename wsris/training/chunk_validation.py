"""Deprecated alias of :mod:`wsris.methods.chunk.validation`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.chunk.validation")
