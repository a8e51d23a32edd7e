"""Reimbursement claims (入账 / 报销): an agency books an amount against a document, so that
no bill is reimbursed twice, whichever agencies claim it.

`claimable` says how much of a document may be claimed, `leaves` what a claim puts on the
ledger, `booking` the write side (claims and releases, decided under the ledger lock) and
`store` the read side (who may see which claims, totals, events).
"""
