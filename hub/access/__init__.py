"""Who may see which documents: grants, views, the access log and request limits."""
