"""The package's version, in a module of its own so that stamping it imports nothing else."""

__version__ = "0.1.0"
