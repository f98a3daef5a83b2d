"""Training: the protocol (split, compare, tune, threshold, test) and the run folder it writes."""
