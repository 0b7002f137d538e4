"""Served targets: llama.cpp's server, vLLM, SGLang, OpenAI-compatible (docs/remote.md)."""
