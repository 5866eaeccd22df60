from __future__ import annotations

import inspect

import cqrs_ddd_testing


def test_the_public_api_is_exactly_what_all_lists() -> None:
    # given
    module_names = vars(cqrs_ddd_testing)
    # when
    public = {
        name
        for name, value in module_names.items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    # then
    assert public == set(cqrs_ddd_testing.__all__)
