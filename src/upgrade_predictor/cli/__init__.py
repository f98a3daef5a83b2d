"""The command line: a thin layer over the stage modules. Input errors exit 2 with one message.

Each command is a module of this package; a command loads only the stage it runs (inside the
command): importing every stage (scikit-learn, LightGBM, DuckDB, matplotlib, ...) takes about 3 s
and 300 MB, which `--help` and a scoring job should not pay. The library modules themselves import
at the top.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from .app import app, console

# Each module registers its command; --help lists them in this order.
COMMANDS = ("train", "report", "features", "score", "serve", "drift", "campaign")
for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["app", "main"]


# Logistic regression's Newton-Cholesky solver warns, with a page of linear algebra, when one-hot columns
# beside the intercept make its Hessian near singular (large events designs, weak penalties), then falls
# back to L-BFGS and fits anyway: the fit is sound, and the message names nothing a user can change.
NEWTON_FALLBACK = r"The inner solver of NewtonCholeskySolver stumbled upon a singular"


def main() -> None:
    from ..process import run

    warnings.filterwarnings("ignore", message=NEWTON_FALLBACK)
    sys.exit(run(app, console))
