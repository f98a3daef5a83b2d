"""Where data comes from: tables (CSV and Parquet files) and dated event tables."""
