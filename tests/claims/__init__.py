"""Reimbursement claims: booking, release, disputes and who sees them (issue 16)."""
