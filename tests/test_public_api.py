"""Keeps every package's public API honest: ``__all__`` lists exactly what is public,
and every public module, class, function and method has a docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import pytest

PACKAGES = [
    "cqrs_ddd_core",
    "cqrs_ddd_advanced_core",
    "cqrs_ddd_persistence_sqlalchemy",
    "cqrs_ddd_infrastructure_messaging",
    "cqrs_ddd_testing",
]


def public_modules(root: str) -> Iterator[ModuleType]:
    package = importlib.import_module(root)
    yield package
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{root}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if ".migrations" in info.name:  # Alembic scripts: run by Alembic, not imported
            continue
        yield importlib.import_module(info.name)


ALL_MODULES = [module for root in PACKAGES for module in public_modules(root)]
PACKAGE_MODULES = [module for module in ALL_MODULES if hasattr(module, "__path__")]


def defined_here(module: ModuleType, value: object) -> bool:
    root = module.__name__.split(".")[0]
    return (inspect.isclass(value) or inspect.isfunction(value)) and getattr(
        value, "__module__", ""
    ).startswith(root)


@pytest.mark.parametrize("module", PACKAGE_MODULES, ids=lambda m: m.__name__)
def test_every_package_lists_its_public_names_in_all(module: ModuleType) -> None:
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module.__name__} has no __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
    private = [name for name in exported if name.startswith("_")]
    assert not private, f"{module.__name__}.__all__ exports private names: {private}"
    unlisted = sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and defined_here(module, value) and name not in exported
    )
    assert not unlisted, f"{module.__name__} exposes names missing from __all__: {unlisted}"
    assert len(set(exported)) == len(exported), f"{module.__name__}.__all__ repeats a name"


@pytest.mark.parametrize("module", ALL_MODULES, ids=lambda m: m.__name__)
def test_every_public_module_class_and_function_has_a_docstring(module: ModuleType) -> None:
    assert inspect.getdoc(module), f"module {module.__name__} has no docstring"
    undocumented: list[str] = []
    for name, value in vars(module).items():
        if name.startswith("_") or not defined_here(module, value):
            continue
        if value.__module__ != module.__name__:
            continue
        if not (value.__doc__ or "").strip():
            undocumented.append(name)
        if inspect.isclass(value):
            undocumented.extend(
                f"{name}.{attribute}"
                for attribute, member in vars(value).items()
                if not attribute.startswith(("_", "test_"))  # test names are sentences
                and (inspect.isfunction(member) or isinstance(member, classmethod | property))
                and not (inspect.getdoc(member) or "").strip()
            )
    assert not undocumented, f"{module.__name__}: undocumented public names {undocumented}"
