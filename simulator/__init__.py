"""A simulated world with a known click model, its logging policy, and the comparison of designs."""

from simulator.click_model import ExpectedOutcomes, SampledOutcomes
from simulator.errors import SimulationInputError, SimulatorError, WorldConfigError
from simulator.logging_policy import LegacyScorer, LoggingPolicy
from simulator.records import RequestBatch
from simulator.run import SimulationSummary, simulate
from simulator.world import ObservedItems, ObservedUsers, World
from simulator.world_config import WorldConfig

__all__ = [
    "ExpectedOutcomes",
    "LegacyScorer",
    "LoggingPolicy",
    "ObservedItems",
    "ObservedUsers",
    "RequestBatch",
    "SampledOutcomes",
    "SimulationInputError",
    "SimulationSummary",
    "SimulatorError",
    "World",
    "WorldConfig",
    "WorldConfigError",
    "simulate",
]
