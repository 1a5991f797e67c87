"""Hypothesis strategies shared by the fuzz tests: any JSON-like value, and valid values bent out of shape."""

from __future__ import annotations

import datetime
import typing as t

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.binary(max_size=10)
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
)
#: Anything that YAML, JSON or a MongoDB document can hold (and a few things they cannot).
anything = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def bent(valid: t.Mapping[str, t.Any], keys: t.Sequence[str]) -> st.SearchStrategy[t.Dict[str, t.Any]]:
    """`valid` with some of `keys` replaced by anything, some removed, and maybe an unknown key."""

    @st.composite
    def build(draw: st.DrawFn) -> t.Dict[str, t.Any]:
        out = dict(valid)
        for key in draw(st.lists(st.sampled_from(list(keys)), max_size=4, unique=True)):
            if draw(st.booleans()):
                out[key] = draw(anything)
            else:
                out.pop(key, None)
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.text(max_size=8))] = draw(anything)
        return out

    return build()
