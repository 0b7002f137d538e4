"""The explorer (`chat`) on a served target: a real llama-server, the TUI driven through Pilot.
The answer is the server's own greedy completion of the chat-templated prompt; the stats panel
shows the remote costs (requests a step, the server's compute apart from the round trips) and
the draft panel a step's server time."""
from specscope.session import load_session
from specscope.tui.app import make_app
from specscope.tui.widgets.draft_panel import Body, DraftPanel
from specscope.tui.widgets.stats_panel import StatsPanel
from tests.remote.conftest import needs_llama_server, remote_profile
from tests.remote.test_llama_server import server_greedy
from tests.tui.tui_helpers import PROMPT, SIZE, rendered_text, run, send, settle

pytestmark = needs_llama_server


def test_chat_on_a_served_target(tiny_server):
    session = load_session(remote_profile(tiny_server.url))
    messages = [{"role": "user", "content": PROMPT}]
    expected = server_greedy(tiny_server.url, session.encode(messages), 24)

    async def body():
        app = make_app(session=session, method="draft", draft_len=4, max_new_tokens=24)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            ids = [t for _, verified in answer.steps for t in verified.emitted]
            assert ids == expected[:len(ids)] and len(ids) == app.last_summary.new_tokens > 0
            assert app.last_summary.requests >= app.last_summary.steps
            stats = rendered_text(app.query_one(StatsPanel))
            assert "remote" in stats and "requests" in stats and "round trips" in stats
            assert "requests)" in app.query_one(DraftPanel).query_one(Body).renderable.plain

    run(body())
