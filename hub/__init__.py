"""Ledger Hub: the server (ledger, documents, access, auth, app, CLI)."""
