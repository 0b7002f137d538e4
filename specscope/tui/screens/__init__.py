"""Screens pushed over the explorer: loading progress, help."""
