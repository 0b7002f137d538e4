"""The pure core: models, drafters, verification and the decoding loop.

Never imports textual, typer or rich (tests/core/test_boundary.py checks it). Front ends consume
the typed events that `SpecDecoder.run` yields.
"""
