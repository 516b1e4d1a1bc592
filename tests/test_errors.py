"""Every exception this package defines derives from XdsServerError and lives in
xds_server.errors, so one `except XdsServerError` sees them all and one module lists
them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import xds_server
from xds_server import errors


def _our_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(xds_server.__path__, "xds_server.")
        if "_pb2" not in info.name
    ]


def test_every_exception_derives_from_the_root_and_lives_in_errors() -> None:
    modules, found = _our_modules(), {}
    assert len(modules) > 50, modules  # the walk sees the whole package
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("xds_server")
            ):
                found[value.__qualname__] = value
    elsewhere = sorted(n for n, cls in found.items() if cls.__module__ != errors.__name__)
    assert elsewhere == []
    outside = sorted(n for n, cls in found.items() if not issubclass(cls, errors.XdsServerError))
    assert outside == []
