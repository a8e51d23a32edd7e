"""The ledger: pure tree, tile and note formats, its storage, the sequencer and the audit."""
