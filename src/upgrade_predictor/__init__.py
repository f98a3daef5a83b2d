"""upgrade-predictor: predict which free users will upgrade, and decide whom to target.

The Python API (`train`, `load_model`, `audit`, `report`, `plan_campaign`, `read_out`) lives in `upgrade_predictor.api`; it is
imported on first use, so that `import upgrade_predictor` and the command line start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InputError
from .version import __version__

__all__ = [
    "__version__",
    "Audit",
    "InputError",
    "Model",
    "TrainConfig",
    "TrainedRun",
    "audit",
    "load_model",
    "plan_campaign",
    "read_out",
    "report",
    "train",
]

if TYPE_CHECKING:
    from .api import (
        Audit,
        Model,
        TrainConfig,
        TrainedRun,
        audit,
        load_model,
        plan_campaign,
        read_out,
        report,
        train,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'upgrade_predictor' has no attribute {name!r}")
