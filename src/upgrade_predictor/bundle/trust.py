"""The types a bundle's pipeline may hold: those of the pipeline around the model (features, samplers,
encoders, calibration), and those of each family's fitted model, from the family registry.

Loading trusts only these. The list is never read from the artifact, so a bundle that asks for
anything else (a tampered or foreign file) is refused before it is deserialised."""

from __future__ import annotations

import skops.io as sio

from ..models import FAMILIES, FOREST_TYPES, Family

# Beyond what skops trusts by default, every type of the pipelines models.py builds around a model.
FRAMEWORK_TYPES = frozenset(
    {
        # containers and arrays the fitted steps keep
        "builtins.slice",
        "collections.OrderedDict",
        "collections.defaultdict",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.number",
        "pandas.core.indexes.base.Index",
        "scipy.sparse._csr.csr_matrix",
        "sklearn.utils._bunch.Bunch",
        # the pipeline, its row sample and its imbalance samplers
        "imblearn.FunctionSampler",
        "imblearn.base.FunctionSampler",
        "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
        "imblearn.over_sampling._smote.base.SMOTE",
        "imblearn.over_sampling._smote.base.SMOTEN",
        "imblearn.over_sampling._smote.base.SMOTENC",
        "imblearn.pipeline.Pipeline",
        "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
        "upgrade_predictor.models.stratified_sample",
        "upgrade_predictor.models_sampling.random_oversample",
        "upgrade_predictor.models_sampling.random_undersample",
        "upgrade_predictor.models_sampling.stratified_sample",
        # features and encodings
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.compose._column_transformer._RemainderColsList",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.PowerTransformer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "upgrade_predictor.features.EngagementFeatures",
        "upgrade_predictor.features.QuantileClipper",
        "upgrade_predictor.features.SampledImputer",
        "upgrade_predictor.features.SampledPowerTransformer",
        # the course recipe: its outlier rule, its dropped column and its forest
        "upgrade_predictor.features.drop_columns",
        "upgrade_predictor.features.drop_reference_outliers",
        *FOREST_TYPES,
        # Platt scaling of a whole pipeline (calibration.calibrated), and of a fitted one on recent rows
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.frozen._frozen.FrozenEstimator",
        "sklearn.model_selection._split.StratifiedKFold",
        # gradient-boosted histograms, kept readable for bundles that hold them
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def trusted_types(family: Family) -> frozenset[str]:
    """What a bundle of this family's model may hold."""
    return FRAMEWORK_TYPES | family.fitted_types


TRUSTED_TYPES = sorted(FRAMEWORK_TYPES.union(*(f.fitted_types for f in FAMILIES.values())))


def untrusted_in(pipeline_bytes: bytes) -> list[str]:
    """The types the serialised pipeline asks for that no family's bundle may hold."""
    return [t for t in sio.get_untrusted_types(data=pipeline_bytes) if t not in TRUSTED_TYPES]
