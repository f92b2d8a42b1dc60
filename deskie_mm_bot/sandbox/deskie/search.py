"""The Deskie text-search rule: substring by default, ``^x^`` exact, ``^x`` prefix, ``x^`` suffix."""

from __future__ import annotations


def text_matches(pattern: str, value: str | None, anchors: bool = True) -> bool:
    """``anchors=False``: an account that does not know the ``^`` syntax (plain substring search)."""
    if value is None:
        return False
    pattern_l = pattern.lower()
    value_l = value.lower()
    if not anchors:
        return pattern_l in value_l
    starts = pattern_l.startswith("^")
    ends = pattern_l.endswith("^") and len(pattern_l) > (1 if starts else 0)
    core = pattern_l[1 if starts else 0 : len(pattern_l) - (1 if ends else 0)]
    if starts and ends:
        return value_l == core
    if starts:
        return value_l.startswith(core)
    if ends:
        return value_l.endswith(core)
    return core in value_l
