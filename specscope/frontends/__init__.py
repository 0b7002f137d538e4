"""Front ends that only consume engine events: terminal rendering, JSON lines, loading progress."""
