"""Modules loaded on first use, for heavy libraries that only some deployments need.

``lazy_module("pkg.mod")`` returns the module at once and executes it the first time one
of its attributes is read (``importlib.util.LazyLoader``). An entry point that only
*refers* to a service module (a view, an admin page) then costs nothing until it is
used: OIDC login brings authlib, joserfc and requests (tens of MiB) into a process only
when an identity provider is actually used.
"""

from __future__ import annotations

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
