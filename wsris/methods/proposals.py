"""Deprecated alias of :mod:`wsris.blocks.proposals`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.blocks.proposals")
