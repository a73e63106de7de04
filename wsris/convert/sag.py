"""Deprecated alias of :mod:`wsris.methods.sag.convert`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.sag.convert")
