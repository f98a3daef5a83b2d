"""The one id policy of the event tables: when two cells name the same user.

An id is compared as its canonical text: trimmed of spaces (Unicode ones too); a whole number written
with a decimal part of zeros (258798.0, as pandas writes an integer column with gaps) is the number
(258798); quotes are the CSV's, not the id's ("258798" is 258798). So 258798, 258798.0, " 258798 " and
"258798" name one user in every table and file format. Other text is compared exactly: "007" stays "007"
(codes with leading zeros are text), and so is "258798.5" (an id of nobody, counted as such). An empty
cell, and in a float column a value that is not whole (258798.5), NaN or infinity, are no id. When the users table and another table both store numbers, they are joined as
numbers (faster, and the same users).

Ids of a conversions or activity table that match no user are counted per table; a table where nearly
none match (under MIN_MATCHED_SHARE of its rows with an id, when at least MIN_ROWS_TO_JUDGE have one) is
refused: its id column is not the users table's, and its features would be all zero without a word.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from upgrade_predictor.errors import InputError
from upgrade_predictor.sources.event_dates import INTEGER_PREFIXES, NUMBER_PREFIXES
from upgrade_predictor.sources.messages import excerpt

MIN_MATCHED_SHARE = 0.01
MIN_ROWS_TO_JUDGE = 20
# What DuckDB's trim() removes (the Unicode space separators): ids are compared trimmed of these.
SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
WHOLE = r"^([+-]?[0-9]+)\.0*$"  # 258798.0 -> 258798
_WHOLE = re.compile(WHOLE)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def id_sql(column: str, typ: str, as_number: bool) -> str:
    """SQL: the id as a BIGINT (`as_number`, for a numeric column) or as canonical text; NULL when none."""
    c = _ident(column)
    if typ.startswith(NUMBER_PREFIXES) and not typ.startswith(INTEGER_PREFIXES):
        # A float or decimal id: whole values are the integer ids; TRY_CAST, as 1e30 fits no BIGINT.
        x = f"CAST({c} AS DOUBLE)"
        c, typ = f"(CASE WHEN isfinite({x}) AND {x} = trunc({x}) THEN TRY_CAST({x} AS BIGINT) END)", "BIGINT"
    if typ.startswith(INTEGER_PREFIXES):
        return c if as_number else f"CAST({c} AS VARCHAR)"
    text = f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
    return f"regexp_replace({text}, '{WHOLE}', '\\1')"


def canonical_id(value: object) -> str | None:
    """The canonical text of one id under the policy (Python's reading, for tests and messages)."""
    if value is None:
        return None
    if isinstance(value, float):
        fits = value == value and abs(value) < 2.0**63
        return str(int(value)) if fits and value == int(value) else None
    if isinstance(value, int):
        return str(value)
    text = str(value).strip(SPACES)
    return _WHOLE.sub(r"\1", text) if text else None


def id_text(ids: pa.Array | object) -> pa.Array:
    """Ids (an Arrow array or a pandas Series) as their canonical text (null when none), so one user's id
    reads the same in every table and every partition of a cluster."""
    arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.Array.from_pandas(ids)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_decimal(arr.type):
        arr = pc.cast(arr, pa.float64())
    if pa.types.is_floating(arr.type):
        fits = pc.and_(pc.is_finite(arr), pc.less(pc.abs(arr), 2.0**63))
        whole = pc.and_(fits, pc.equal(arr, pc.trunc(arr)))
        arr = pc.if_else(whole, pc.cast(pc.if_else(whole, arr, 0.0), pa.int64()), None)
    text = pc.cast(arr, pa.string())
    if not pa.types.is_integer(arr.type):
        text = pc.utf8_trim(text, SPACES)
        text = pc.if_else(pc.equal(text, ""), None, text)
        text = pc.replace_substring_regex(text, WHOLE, r"\1")
    return text


def check_matched(where: str, column: str, rows: int, unknown: int, example: str, users_example: str) -> None:
    """Refuse a table whose ids nearly all match no user, naming an id of each side."""
    if rows < MIN_ROWS_TO_JUDGE or rows - unknown >= MIN_MATCHED_SHARE * rows:
        return
    theirs = f" (users table ids look like {excerpt(users_example)})" if users_example else ""
    raise InputError(
        f"{where}: {unknown:,} of {rows:,} ids in `{column}` match no user (e.g. {excerpt(example)}){theirs}; "
        "map the column that holds the users table's ids"
    )
