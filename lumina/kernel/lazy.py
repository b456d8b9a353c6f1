"""Modules loaded on first use, for heavy libraries that only some deployments need.

``lazy_module("pkg.mod")`` returns the module at once and executes it the first time one
of its attributes is read (``importlib.util.LazyLoader``). An entry point that only
*refers* to a service module (a view, an admin page) then costs nothing until it is
used: OIDC login brings authlib, joserfc and requests (tens of MiB) into a process only
when an identity provider is actually used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def lazy_module(name: str) -> ModuleType:
    """``name``, imported now if it already is, else executed on first attribute access."""
    with _lock:
        module = sys.modules.get(name)
        if module is not None:
            return module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module


class LazyImport:
    """A stand-in for a module, imported on the first attribute read, from any thread.

    ``np = LazyImport("numpy")`` keeps numpy out of a process until code that computes
    with it runs. Unlike ``lazy_module`` it never puts a half-loaded module in
    ``sys.modules``: the first read runs an ordinary import (thread-safe under the import
    lock) and every read after it is one forwarded ``getattr``. For modules whose names
    are only read inside functions; ``isinstance(x, np.ndarray)`` sees the real class.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy import of {self._name!r}>"
