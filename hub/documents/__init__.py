"""Documents: canonical bodies, commitments, the medical invoice and submission."""
