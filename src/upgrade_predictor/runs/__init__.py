"""What every run kind shares: its options, its run.json record, and the run folder it is written to."""
