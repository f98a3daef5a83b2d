"""Where data comes from: tables (CSV and Parquet files) and dated event tables.

Training, batch scoring, drift checks and the Dask path all read tables through this package, so every
reader shares one input rule (a file, a folder of parts or a glob, parts in name order: `inputs`), one
missing-value rule (only an empty cell is missing: the country code "NA" is Namibia), one missing-column
message and one refusal of duplicated column names (`columns`), one refusal of binary or otherwise
compressed content (`formats`), and one rule for Parquet types (`columns.arrow_kind`): numbers and text
are data; lists, records and raw bytes are refused by column name; true/false flags and dates are not
numbers. A whole table is read by `tables`, record batches by `batches`, a Dask dataframe by `dask`.
Text from a file reaches a message only as a short escaped excerpt (`messages`).

This is the lowest layer: nothing here knows a model's schema.
"""
