"""The drafting methods by name, and what each needs (one table for help texts, profiles, checks)."""

# Drafting methods: name -> one line for help texts.
METHODS = {
    "ar": "plain autoregressive decoding, the baseline",
    "draft": "a small draft model proposes a chain (classic speculative decoding)",
    "tree": "the draft model, with alternatives where it is unsure, verified as one tree",
    "lookup": "prompt lookup: copy what followed the last n-gram earlier in the text (no model)",
    "pool": "Ouroboros: the draft model, extended by whole phrases from a pool of verified text",
    "layerskip": "Draft & Verify: the target drafts for itself with some layers skipped",
    "jacobi": "Speculative Diffusion Decoding's idea, training-free: the draft model refines a "
              "whole block in a few parallel passes (Jacobi)",
    "mtp": "FastMTP: a small trained head on the target's last hidden state drafts (specscope mtp train)",
    "mtp-tree": "FastMTP's head drafting a tree a level at a time (its runners-up where it is unsure), "
                "plus a copy branch from the context (prompt lookup), verified as one tree",
}
NEEDS_DRAFTER = {"draft", "tree", "pool", "jacobi"}
NEEDS_MTP_HEAD = {"mtp", "mtp-tree"}
# methods that read the target's hidden states (or run part of its layers): not on a backend
# that returns logits only (llama.cpp, core/llamacpp.py)
NEEDS_HIDDEN = {"layerskip", *NEEDS_MTP_HEAD}
