"""Deprecated alias of :mod:`wsris.training.warm_start`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.training.warm_start")
