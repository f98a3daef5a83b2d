"""`python -m upgrade_predictor.cli`: the command line."""

from . import main

main()
