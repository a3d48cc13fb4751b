"""The errors a user can cause, as the CLI and HTTP layers see them."""

from bandits.errors import BanditsError
from heuristics.errors import HeuristicsError
from ranker.errors import RankerError
from simulator.errors import SimulatorError

#: Domain errors that the CLI reports as one line (no traceback) and the API as a 4xx body.
USER_ERRORS: tuple[type[Exception], ...] = (HeuristicsError, BanditsError, RankerError, SimulatorError)
