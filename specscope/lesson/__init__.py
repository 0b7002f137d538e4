"""`specscope lesson`: a guided walk through speculative decoding, one live run per chapter."""
