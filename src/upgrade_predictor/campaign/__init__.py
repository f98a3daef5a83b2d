"""A randomized holdout for an offer: plan who is sent it and who is held out, then read out what it did.

`plan.plan_campaign` scores the free users of event tables, selects and assigns them (`assign.py`) and
sizes what the campaign can detect (`power.py`); `run.read_out` reads the upgrades that followed and
measures the offer's effect and profit (`readout.py`). Both write typed records (`records.py`).
"""
