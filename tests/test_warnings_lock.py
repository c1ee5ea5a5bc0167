"""ignoring_warnings_from: a scoped filter that never restores a whole saved filter list."""

from __future__ import annotations

import warnings

from braintumor._warnings_lock import ignoring_warnings_from


def test_filter_lives_while_any_user_is_inside_and_leaves_with_the_last():
    before = list(warnings.filters)
    with ignoring_warnings_from(r"some_library(\.|$)"):
        with ignoring_warnings_from(r"some_library(\.|$)"):
            assert len(warnings.filters) == len(before) + 1
        assert len(warnings.filters) == len(before) + 1  # the outer user is still inside
    assert warnings.filters == before


def test_filters_added_meanwhile_by_others_survive():
    with ignoring_warnings_from(r"some_library(\.|$)"):
        warnings.filterwarnings("error", message="added by someone else")
        mine = warnings.filters[0]
    try:
        assert mine in warnings.filters
    finally:
        warnings.filters.remove(mine)

