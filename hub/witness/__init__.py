"""Witnesses (C2SP tlog-witness): the witness server, the hub side offering it
checkpoints, and the monitor."""
