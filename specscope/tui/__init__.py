"""`specscope chat`: the Textual explorer. Build it with `specscope.tui.app.make_app`."""
