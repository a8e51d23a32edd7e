"""Witnesses (C2SP tlog-witness): the witness server, the hub offering it checkpoints, the monitor."""
