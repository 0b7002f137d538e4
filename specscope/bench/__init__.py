"""`specscope bench`: Spec-Bench-style measurements of methods against plain decoding."""
