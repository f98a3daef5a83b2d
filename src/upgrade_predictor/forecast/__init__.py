"""Forecasting upgrades from dated event tables: point-in-time rows, survival curves and backtests."""
