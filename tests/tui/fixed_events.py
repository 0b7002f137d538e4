"""A fixed run of hand-made engine events, for pictures that must not depend on model numerics.

Four steps of a chain drafter over a short answer: a partial accept with a correction, a full
accept with a bonus, a first-token rejection, and a draft that runs past <|im_end|> (two accepted
tokens dropped, no correction). Timings are zero: snapshot mode hides them anyway.
"""
from specscope.core.events import Drafted, Finished, Started, Verified
from specscope.core.stats import Stats

EOS = 2


def step(i, context, texts, tokens, q, p, n_kept, token, token_text, emitted_pieces, *, dropped=0,
         token_emitted=True):
    k = len(tokens)
    accepted = tuple(j < n_kept for j in range(k))
    cut = tuple(n_kept <= j < n_kept + dropped for j in range(k))
    on_path = n_kept + dropped
    drafted = Drafted(step=i, context_len=context, method="draft", draft_len=k, tokens=tokens,
                      texts=texts, q=q, parents=tuple(range(-1, k - 1)), draft_s=0.0)
    emitted = tokens[:n_kept] + ((token,) if token_emitted else ())
    verified = Verified(step=i, p=p, accepted=accepted, n_accepted=n_kept,
                        first_rejected=on_path if token_emitted and on_path < k else None,
                        token=token, token_text=token_text, bonus=on_path == k, emitted=emitted,
                        pieces=emitted_pieces, verify_s=0.0, draft_s=0.0, dropped=cut,
                        token_emitted=token_emitted, kv_target_bytes=(context + len(emitted)) * 28672,
                        kv_draft_bytes=(context + len(emitted)) * 12288)
    return drafted, verified


STEPS = [
    step(0, 20, (" Caches", " keep", " the", " hot"), (10, 11, 12, 13), (0.82, 0.74, 0.61, 0.35),
         (0.91, 0.88, 0.70, 0.04), 3, 14, " recent", (" Caches", " keep", " the", " recent")),
    step(1, 24, (" data", " close", "."), (15, 16, 17), (0.93, 0.66, 0.90), (0.97, 0.81, 0.95), 3,
         18, "\n", (" data", " close", ".", "\n")),
    step(2, 28, ("Misses", " cost"), (19, 20), (0.44, 0.52), (0.06, 0.30), 0, 21, "Reads",
         ("Reads",)),
    step(3, 29, (" stay", " fast", "<|im_end|>", "Human", ":"), (22, 23, EOS, 24, 25),
         (0.71, 0.69, 0.88, 0.62, 0.57), (0.86, 0.92, 0.97, 0.74, 0.66), 3, 26, " Hi",
         (" stay", " fast", ""), dropped=2, token_emitted=False),
]


def events():
    """Started, each step's Drafted and Verified, and a Finished folded by the core's Stats."""
    stats = Stats(param_ratio=0.33)
    out = [Started(prompt_tokens=20, method="draft", prefill_s=0.0)]
    for drafted, verified in STEPS:
        out += [drafted, verified]
    for e in out:
        stats.add(e)
    out.append(Finished(stats.summary("eos", wall_s=1.0)))
    return out
