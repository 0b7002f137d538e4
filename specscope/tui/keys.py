"""Every key of the explorer, in one list: the app's bindings, the footer and the help screen.

`description` is the short footer label; `tooltip` is the help screen's longer line.
Letter keys act when the prompt box is not focused (Esc leaves it, i or / returns to it), and
none acts while the models load: the loading screen is modal, and what is typed there is a prompt.
"""
from __future__ import annotations

from textual.binding import Binding

BINDINGS = [
    Binding("question_mark,f1", "help", "help", key_display="?",
            tooltip="Open this help screen (Esc or ? closes it)"),
    Binding("i,slash", "focus_prompt", "prompt", key_display="i", show=False,
            tooltip="Type a prompt (Enter sends it; Esc leaves the prompt box so letter keys work)"),
    Binding("escape", "leave_prompt", "leave prompt", show=False,
            tooltip="Leave the prompt box (letter keys then act as controls)"),
    Binding("space", "pause", "pause", key_display="space",
            tooltip="Pause / resume the running answer at the next step boundary (a new answer "
                    "always starts running)"),
    Binding("n", "step", "step",
            tooltip="Teaching mode: run one draft-verify cycle, then pause again; before sending, "
                    "makes the next answer wait for n once it has read the prompt"),
    Binding("s", "stop", "stop", tooltip="Stop the answer; the partial text is kept"),
    Binding("r", "regenerate", "regen",
            tooltip="Regenerate the last answer with the current controls (new seed when sampling)"),
    Binding("c", "clear", "clear", show=False, tooltip="Clear the conversation and the statistics"),
    Binding("plus,equals_sign", "draft_len(1)", "draft len", key_display="+/-",
            tooltip="Draft length + 1 (applies at the next step)"),
    Binding("minus", "draft_len(-1)", "k-", key_display="-", show=False,
            tooltip="Draft length - 1 (0 drafts nothing: plain decoding)"),
    Binding("a", "adaptive", "adaptive", show=False,
            tooltip="Adaptive draft length: off, on (cost rule), on (heuristic rule), off ... "
                    "The engine picks each step's length; the draft panel shows it"),
    Binding("t", "temperature(-0.1)", "temp-", show=False, tooltip="Temperature - 0.1 (0 = greedy)"),
    Binding("T", "temperature(0.1)", "temp", key_display="t/T", tooltip="Temperature + 0.1"),
    Binding("p", "top_p(-0.05)", "top-p-", show=False, tooltip="Top-p - 0.05"),
    Binding("P", "top_p(0.05)", "top-p+", show=False, tooltip="Top-p + 0.05"),
    Binding("g", "greedy", "greedy", show=False,
            tooltip="Switch greedy / sampling (sampling restores the last temperature, or 0.7)"),
    Binding("m", "method", "method", tooltip="Next drafting method (ar = plain decoding)"),
    Binding("v", "vocab(-1)", "vocab-", show=False,
            tooltip="Drafter vocabulary size / 2 (needs a trimmed vocabulary: --trimmed)"),
    Binding("V", "vocab(1)", "vocab+", show=False, tooltip="Drafter vocabulary size x 2"),
    Binding("o", "overlap", "overlap", show=False,
            tooltip="Drafting ahead on / off (draft, tree): the drafter's worker drafts the next "
                    "step while the target verifies; the draft panel shows each step's timeline"),
    Binding("h", "hide_rejected", "hide rejected", key_display="h",
            tooltip="Hide / show rejected draft tokens in the conversation"),
    Binding("left_square_bracket", "select_step(-1)", "prev step", key_display="[", show=False,
            tooltip="Select the previous step (the draft panel shows it); clicking a token does too"),
    Binding("right_square_bracket", "select_step(1)", "next step", key_display="]", show=False,
            tooltip="Select the next step; past the last one the panel follows the live step"),
    Binding("l", "live_step", "live", show=False,
            tooltip="Draft panel follows the latest step again"),
    Binding("b", "baseline", "baseline",
            tooltip="Measure plain decoding (method ar) on the last prompt: a measured speedup"),
    Binding("M", "train_head", "train head", show=False,
            tooltip="Train the profile's FastMTP head here (mtp train's budget and plan) and watch "
                    "its held-apart acceptance climb; Esc leaves it running, s stops it, M again "
                    "goes on; once written, m reaches mtp and mtp-tree"),
    Binding("q,ctrl+q", "quit", "quit", key_display="q", tooltip="Quit"),
]
