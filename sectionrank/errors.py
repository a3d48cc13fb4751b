"""The errors a user can cause, as the command line sees them.

Each package has one error family; `FAMILIES` names the base class of each. The command group reports an
error of any family as one line starting with ``Error:`` and exits with status 1, without a traceback; the
HTTP layer answers the same errors as JSON 4xx bodies (`service.http_errors`).

`USER_ERRORS`, the tuple of every family's base class, imports each package's errors module when read, and
``simulator/__init__.py`` brings the whole simulator with it, LightGBM included. The command group catches
`imported_user_errors()` instead: the families whose modules are already imported when the error reaches it.
An error of a family whose module was never imported cannot have been raised, so a command only pays for the
packages it uses.
"""

from __future__ import annotations

import importlib
import sys

#: (module, class) of the base class of each package's error family.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("heuristics.errors", "HeuristicsError"),
    ("bandits.errors", "BanditsError"),
    ("ranker.errors", "RankerError"),
    ("service.errors", "ServiceError"),
    ("simulator.errors", "SimulatorError"),
)


def imported_user_errors() -> tuple[type[Exception], ...]:
    """The base classes of the error families whose modules are imported in this process."""
    found = (getattr(sys.modules.get(module), name, None) for module, name in FAMILIES)
    return tuple(cls for cls in found if cls is not None)


def __getattr__(name: str) -> tuple[type[Exception], ...]:
    # USER_ERRORS: every family, importing each (PEP 562), so that importing this module imports none.
    if name == "USER_ERRORS":
        return tuple(getattr(importlib.import_module(module), cls) for module, cls in FAMILIES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
