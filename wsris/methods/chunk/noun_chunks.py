"""Deprecated alias of :mod:`wsris.blocks.noun_chunks`; see CHANGELOG.md."""

from wsris._compat import moved

moved(__name__, "wsris.blocks.noun_chunks")
