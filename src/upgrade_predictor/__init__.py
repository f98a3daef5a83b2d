"""upgrade-predictor: predict which free users will upgrade, and decide whom to target."""

__version__ = "0.1.0"
