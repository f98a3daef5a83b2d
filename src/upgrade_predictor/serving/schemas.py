"""The request and response models of the service, as /docs shows them: the User model built from
the bundle's schema, the answers, the error bodies and the OpenAPI text of /predict."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..schema import Schema
from .limits import MAX_DETAILS, MAX_USERS


def user_model(schema: Schema) -> type[BaseModel]:
    """A request model built from the bundle's schema, so /docs shows the exact input contract.

    It checks JSON types only (a number, not "12" or true; a code as text, not 7), which a CSV cell
    cannot express. Every value rule (missing, negative, infinite) is the schema's own, checked once by
    Scorer.score_frame as for batch files: a null or absent field is an empty cell."""
    fields: dict[str, Any] = {}
    for col in schema.columns:
        typ: Any
        if col.kind == "numeric":
            typ = Optional[float]
            shown: dict[str, Any] = {"minimum": 0} if col.nonnegative else {}
            desc = (
                f"number (training range {col.minimum:g}..{col.maximum:g})"
                if (col.minimum is not None and col.maximum is not None)
                else "number"
            )
        else:
            typ, shown = Optional[str], {}
            examples = ", ".join(col.categories[:8])
            desc = (
                f"code ({len(col.categories)} known, e.g. {examples}); unseen codes are scored as rare ones"
            )
        if col.nullable:
            desc += "; may be null (filled as in training)"
        fields[col.name] = (typ, Field(None, description=desc, strict=True, json_schema_extra=shown))
    if schema.id_column and schema.id_column not in fields:
        fields[schema.id_column] = (Optional[str | int], Field(None, description="carried through"))
    # Documented as required; a null or absent value is refused by the schema's rules, with its name.
    required: dict[str, Any] = {"required": [c.name for c in schema.columns if not c.nullable]}
    return create_model("User", __config__=ConfigDict(extra="ignore", json_schema_extra=required), **fields)


class Prediction(BaseModel):
    probability: float
    decision: int
    threshold: float
    id: str | int | None = None
    reasons: list[str] | None = None
    warnings: list[str] | None = None


class Predictions(BaseModel):
    predictions: list[Prediction]


class FieldProblem(BaseModel):
    field: str = Field(description='the field, e.g. "minutes_watched" or "[3].minutes_watched" in a list')
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="one sentence naming the problem")
    details: list[FieldProblem] | None = Field(None, description=f"up to {MAX_DETAILS} field problems")


def request_body(User: type[BaseModel]) -> dict[str, Any]:
    """The /predict body as OpenAPI: one user or a list of up to MAX_USERS (an empty list is valid
    and gets an empty list of predictions)."""
    ref = {"$ref": "#/components/schemas/User"}
    schema = {
        "anyOf": [ref, {"type": "array", "items": ref, "maxItems": MAX_USERS, "title": "Users"}],
        "title": "Body",
    }
    return {
        "required": True,
        "description": f"one user, or a list of at most {MAX_USERS:,} (an empty list gets no predictions)",
        "content": {"application/json": {"schema": schema}},
    }


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is empty, not UTF-8 or not JSON"},
    413: {
        "model": ErrorBody,
        "description": f"body over the byte limit, or more than {MAX_USERS:,} users",
    },
    422: {"model": ErrorBody, "description": "invalid user(s): the message names the field"},
    503: {
        "model": ErrorBody,
        "description": "the scoring queue is full; retry after the seconds in Retry-After",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "no bearer token, or one the service does not accept (nothing is scored)",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    },
}
