"""The errors a user can cause, as the command line sees them.

`USER_ERRORS` holds the base class of each package's error family; the CLI's command group reports any of
them as one line starting with ``Error:`` and exits with status 1, without a traceback. The HTTP layer
answers the same errors as JSON 4xx bodies (`service.http_errors`).

Importing this module loads every package's error module, and through `simulator/__init__.py` the simulator
with it: the command group imports it when a command runs, never for ``--help`` or ``--version``.
"""

from bandits.errors import BanditsError
from heuristics.errors import HeuristicsError
from ranker.errors import RankerError
from service.errors import ServiceError
from simulator.errors import SimulatorError

#: Domain errors that the CLI reports as one line (no traceback) and the API as a 4xx body.
USER_ERRORS: tuple[type[Exception], ...] = (
    HeuristicsError,
    BanditsError,
    RankerError,
    ServiceError,
    SimulatorError,
)
