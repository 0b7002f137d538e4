"""Helpers for the TUI tests: run Pilot bodies, wait for the engine, read rendered widgets."""
import asyncio

from textual.geometry import Region

SIZE = (140, 44)
PROMPT = "Write a haiku about caches."


def run(coro):
    """Run a Pilot test body (no async test plugin needed)."""
    return asyncio.run(coro)


async def until(pilot, condition, timeout=30.0):
    """Let the app run until condition() holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "timed out waiting for the app"
        await pilot.pause(0.01)
    await pilot.pause()


async def settle(pilot):
    """Wait for the generation worker to end and its messages to be handled."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await until(pilot, lambda: app.running is None)
    await pilot.pause()


async def send(pilot, text=PROMPT):
    """Type a prompt into the prompt box and press Enter."""
    await pilot.pause()  # let the first layout land before touching anything
    pilot.app.query_one("#prompt").focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def parked(pilot, parks):
    """Wait until the paused worker has parked `parks` times and the UI has its events."""
    await until(pilot, lambda: pilot.app.gate.parks >= parks and pilot.app.gate.waiting)
    await pilot.pause()


def rendered_lines(widget):
    """The widget's lines as drawn (borders and padding included): lists of rich Segments."""
    width, height = widget.size
    return [list(strip) for strip in widget.render_lines(Region(0, 0, width, height))]


def rendered_text(widget) -> str:
    return "\n".join("".join(seg.text for seg in line).rstrip() for line in rendered_lines(widget))
