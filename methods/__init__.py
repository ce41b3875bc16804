"""Methods (one adapter per method) and their shared building blocks.

The method contract of DESIGN.md (`iterate`, `act`, `state_dict`) and the registry of short names
(`dva`, `shac`, `shac-state`, `dagger`, `drqv2`, `dreamerv3`, `tdmpc2` and aliases) land here with
the first method; see the open issues for the order.
"""
