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


_plain_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
#: What every MongoDB-compatible server stores as it is (FerretDB refuses NaN, odd keys and far dates).
storable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _plain_text
    | st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=10,
)


def bent(
    valid: t.Mapping[str, t.Any], keys: t.Sequence[str], values: st.SearchStrategy[t.Any] = anything
) -> st.SearchStrategy[t.Dict[str, t.Any]]:
    """`valid` with some of `keys` replaced by `values`, some removed, and maybe an unknown key."""

    @st.composite
    def build(draw: st.DrawFn) -> t.Dict[str, t.Any]:
        out = dict(valid)
        for key in draw(st.lists(st.sampled_from(list(keys)), max_size=4, unique=True)):
            if draw(st.booleans()):
                out[key] = draw(values)
            else:
                out.pop(key, None)
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True))] = draw(values)
        return out

    return build()
