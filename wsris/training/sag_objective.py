"""Deprecated alias of :mod:`wsris.methods.sag.objective`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.sag.objective")
