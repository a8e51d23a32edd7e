"""What the hub and the adapters both use and neither owns: JSON log lines and the
event-loop runner. It imports nothing from either, so both may import it."""
