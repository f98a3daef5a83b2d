"""`python -m upgrade_predictor`: the command line."""

from .cli import main

main()
