"""The explorer's widgets, one a file."""
