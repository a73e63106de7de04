"""Deprecated alias of :mod:`wsris.methods.sag.pipeline`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.sag.pipeline")
