"""MLflow tracking: one finished run folder becomes one MLflow run.

`log_run(run_dir)` reads a published run folder (a table run or an events run) and logs it; nothing of
MLflow is imported until it is called, and without MLflow installed it says how to install it.

Where it logs: the tracking URI given, else `$MLFLOW_TRACKING_URI`, else the folder `./mlruns`. A plain
folder path (no scheme) becomes a SQLite store inside that folder (`mlflow.db`, artifacts under
`artifacts/`), because MLflow 3 no longer writes its old one-file-per-value folder store by default;
browse it with `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`. Any URI with a scheme
(`sqlite:///...`, `http://...`, `databricks`, `file:///...`) is passed to MLflow as it is.

Metric names (stable; `<m>` is each of accuracy, balanced_accuracy, precision, recall, f1, roc_auc,
pr_auc, brier, log_loss):

- both kinds: `test_<m>` (the test set or test period, at the run's threshold), `cv_<m>_mean` and
  `cv_<m>_sd` (the chosen candidate across folds, named as in metrics.json and leaderboard.csv),
  `threshold` (the decision threshold the bundle applies);
- table runs: `train_<m>`; `reference_test_<m>`, `reference_cv_<m>_mean`, `reference_cv_<m>_sd` (the
  course's recipe on the same split, when run); `no_leak_test_<m>`, `no_leak_cv_<m>_mean`,
  `no_leak_cv_<m>_sd` (the chosen pipeline without the flagged features, when trained);
- events runs: `baseline_<name>_<m>` on the test period (`<name>`: base_rate, tenure_only, recency_only,
  aggregated_table_model); `difference_<metric>_vs_<name>` with `..._low` and `..._high` (paired
  bootstrap, model minus baseline, 95%); `overdispersion`, `forecast_coverage`, `forecast_expected`,
  `forecast_low`, `forecast_high`, `forecast_free_users`, `forecast_offers`, `policy_break_even_lift`.

A value that is not finite (a ROC AUC of a single-class fold, say) is not logged; the tag
`skipped_metrics` names each one. Parameters are the run's configuration as run.json holds it (lists
joined with commas, unset options left out) plus the chosen model's hyperparameters as `model_<name>`.
Tags: `kind` (table or events), `chosen_key`, `chosen_family`, `chosen_strategy`, `chosen_model`,
`calibrated`, `tool_version`, `run_folder`. Artifacts: leaderboard.csv (also as the MLflow table
leaderboard.json), report.html, model.zip, model_no_leak.zip and their .sig files when present, and the
run's JSON files.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError
from .kinds import kind_of
from .runs.tracked import ChosenModel, Tracked
from .version import __version__

DEFAULT_STORE = "mlruns"
EXPERIMENT = "upgrade-predictor"
NOT_INSTALLED = "--mlflow needs MLflow: pip install 'upgrade-predictor[mlflow]'"

# Files of a run folder logged as artifacts when present (the predictions stay in the folder: they grow
# with the data).
ARTIFACTS = (
    "leaderboard.csv",
    "report.html",
    "model.zip",
    "model.zip.sig",
    "model_no_leak.zip",
    "model_no_leak.zip.sig",
    "run.json",
    "metrics.json",
    "audit.json",
    "design.json",
    "events_audit.json",
    "backtest.csv",
    "forecasts.csv",
)
MAX_TABLE_ROWS = 1000  # larger leaderboards are logged as the CSV only
MAX_PARAM_LENGTH = 6000  # MLflow's limit for one parameter value
BATCH = 100  # MLflow's limit of parameters (and of tags) in one request

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\ is a path


@dataclass
class Record:
    """What one MLflow run receives: parameters, metrics, tags, artifacts and its times."""

    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[Path]
    leaderboard: pd.DataFrame | None
    started_ms: int | None = None
    ended_ms: int | None = None
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Store:
    """The tracking URI MLflow is given, and where a new experiment keeps its artifacts (None: MLflow's
    default for that store)."""

    uri: str
    artifact_location: str | None = None


def resolve_store(tracking_uri: str | None) -> Store:
    """The store to log to: the URI given, else $MLFLOW_TRACKING_URI, else ./mlruns; a plain folder
    path becomes a SQLite store in that folder."""
    uri = (tracking_uri or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_STORE
    if uri == "databricks" or _URI_SCHEME.match(uri):
        return Store(uri)
    folder = Path(uri).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--mlflow {uri}: a file, not a folder; give a folder for the store or a URI")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--mlflow {uri}: cannot create the folder ({e.strerror}); choose another") from None
    return Store(f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri())


def log_run(run_dir: Path, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Log the run folder `run_dir` as one MLflow run in `experiment`; returns the MLflow run id."""
    return log_record(read_record(Path(run_dir)), tracking_uri, experiment)


def log_record(record: Record, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Log `record` (a run folder's, or another command's such as a campaign readout's) as one MLflow
    run in `experiment`; returns the MLflow run id. Its metrics must be finite."""
    try:
        import mlflow  # noqa: F401  (slow to import, so only here; the package itself answers "installed?")
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(NOT_INSTALLED) from None

    store = resolve_store(tracking_uri)
    with _quiet_mlflow():
        try:
            client = MlflowClient(tracking_uri=store.uri)
            experiment_id = _experiment_id(client, experiment, store)
            run = client.create_run(
                experiment_id, start_time=record.started_ms, tags=record.tags, run_name=record.name
            )
        except MlflowException as e:
            raise InputError(
                f"--mlflow {store.uri}: MLflow refused the store ({_first_line(e)}); check the URI, or give "
                "a plain folder path to keep a SQLite store there"
            ) from None
        run_id = run.info.run_id
        try:
            now = record.ended_ms or record.started_ms or int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in record.metrics.items()]
            params = [Param(k, v) for k, v in record.params.items()]
            for i in range(0, max(len(metrics), len(params)), BATCH):
                client.log_batch(run_id, metrics=metrics[i : i + BATCH], params=params[i : i + BATCH])
            for path in record.artifacts:
                client.log_artifact(run_id, str(path))
            if record.leaderboard is not None:
                client.log_table(run_id, record.leaderboard, "leaderboard.json")
        except BaseException as e:
            # The run stays, marked failed, so a half-logged run is never mistaken for a complete one.
            client.set_terminated(run_id, "FAILED")
            if isinstance(e, MlflowException | OSError):
                raise InputError(
                    f"--mlflow {store.uri}: logging run {run_id} failed ({_first_line(e)}); it is marked "
                    "failed there"
                ) from None
            raise
        client.set_terminated(run_id, "FINISHED", end_time=record.ended_ms)
    return run_id


def read_record(run_dir: Path) -> Record:
    """Everything one MLflow run receives, read from a published run folder of either kind."""
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder; give the folder 'upgrade-predictor train' wrote")
    record = _record(run_dir, kind_of(run_dir).tracked(run_dir))
    finite = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
    record.skipped = sorted(set(record.metrics) - set(finite))
    record.metrics = finite
    if record.skipped:
        record.tags["skipped_metrics"] = "not finite, not logged: " + ", ".join(record.skipped)
    long = sorted(k for k, v in record.params.items() if len(v) > MAX_PARAM_LENGTH)
    for k in long:
        record.params[k] = record.params[k][: MAX_PARAM_LENGTH - 3] + "..."
    if long:
        record.tags["truncated_params"] = ", ".join(long) + " (see run.json)"
    record.artifacts = [run_dir / name for name in ARTIFACTS if (run_dir / name).is_file()]
    board = run_dir / "leaderboard.csv"
    record.leaderboard = pd.read_csv(board) if board.is_file() else None
    if record.leaderboard is not None and len(record.leaderboard) > MAX_TABLE_ROWS:
        record.leaderboard = None
    return record


def _record(run_dir: Path, run: Tracked) -> Record:
    """The MLflow run of a run of any kind, as its kind read it."""
    started = _ms(run.started)
    return Record(
        name=run_dir.name,
        params=_params(run.params, run.chosen),
        metrics=run.metrics,
        tags=_tags(run.kind, run_dir, run.chosen, run.calibrated, run.test_pr_auc),
        artifacts=[],
        leaderboard=None,
        started_ms=started,
        ended_ms=None if started is None or run.seconds is None else started + int(run.seconds * 1000),
    )


def _params(values: dict[str, Any], chosen: ChosenModel) -> dict[str, str]:
    """MLflow parameters: text values, lists joined with commas, unset options left out, and the chosen
    model's hyperparameters as model_<name>."""
    out = {k: _text(v) for k, v in values.items() if v is not None and v != []}
    out |= {f"model_{k}": _text(v) for k, v in chosen.params.items()}
    return out


def _text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _tags(
    kind: str, run_dir: Path, chosen: ChosenModel, calibrated: str, test_pr_auc: float
) -> dict[str, str]:
    return {
        "kind": kind,
        "chosen_key": chosen.key,
        "chosen_family": chosen.family,
        "chosen_strategy": chosen.strategy,
        "chosen_model": chosen.label,
        "calibrated": calibrated,
        "tool_version": __version__,
        "run_folder": str(run_dir.resolve()),
        "mlflow.note.content": f"{chosen.label}; test PR AUC {test_pr_auc:.3f}",
    }


def _ms(started: Any) -> int | None:
    """run.json's start time (local time, ISO) in milliseconds since the epoch; None if unreadable."""
    try:
        return int(datetime.fromisoformat(str(started)).timestamp() * 1000) if started else None
    except ValueError:
        return None


def _experiment_id(client: Any, name: str, store: Store) -> str:
    """The id of the experiment `name`, created (with the store's artifact folder) when new."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return str(client.create_experiment(name, artifact_location=store.artifact_location))
    if exp.lifecycle_stage == "deleted":
        raise InputError(
            f"MLflow experiment {name!r} is deleted in {store.uri}; restore it "
            "(mlflow experiments restore) or log to another experiment"
        )
    return str(exp.experiment_id)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow announces database migrations and experiment creation at INFO; the run's own summary is
    what the user reads, so only its warnings pass."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
