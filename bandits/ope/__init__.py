"""Off-policy evaluation (offline replay) of bandit policies from any logged bandit data.

Start with `load_logged_bandit` (CSV / Parquet, see docs/replay.md) or `LoggedBandit`, then `evaluate`.
"""

from bandits.ope.base import (
    BaseEstimator,
    BaseRewardModel,
    Interval,
    ReplayInput,
    RoundValues,
    WeightDiagnostics,
    prepare,
    weight_diagnostics,
)
from bandits.ope.bootstrap import bootstrap_ratios, percentile_interval
from bandits.ope.data import LoggedBandit, from_frame, load_logged_bandit
from bandits.ope.errors import (
    DatasetDownloadError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    NotFittedError,
    ReplayError,
    ReplayInputError,
    TargetPolicyError,
)
from bandits.ope.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    RejectionReplay,
    SelfNormalizedIPS,
    evaluate,
)
from bandits.ope.obd import fetch_obd, load_obd, load_obd_frame, obd_path
from bandits.ope.reward_models import LightGBMRewardModel, RidgeRewardModel, cross_fit_qhat

__all__ = [
    "ESTIMATORS",
    "BaseEstimator",
    "BaseRewardModel",
    "DatasetDownloadError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "DirectMethod",
    "DoublyRobust",
    "Interval",
    "InverseProbabilityWeighting",
    "LightGBMRewardModel",
    "LoggedBandit",
    "NotFittedError",
    "RejectionReplay",
    "ReplayError",
    "ReplayInput",
    "ReplayInputError",
    "RidgeRewardModel",
    "RoundValues",
    "SelfNormalizedIPS",
    "TargetPolicyError",
    "WeightDiagnostics",
    "bootstrap_ratios",
    "cross_fit_qhat",
    "evaluate",
    "fetch_obd",
    "from_frame",
    "load_logged_bandit",
    "load_obd",
    "load_obd_frame",
    "obd_path",
    "percentile_interval",
    "prepare",
    "weight_diagnostics",
]
