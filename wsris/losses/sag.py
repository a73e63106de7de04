"""Deprecated alias of :mod:`wsris.methods.sag.losses`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.methods.sag.losses")
