"""Language-aware drafting rows (core/scripts.py): which script a token and a context are, and the
FastMTP head drafting with its context's script's rows: greedy output the target's own, the
sampling law 3 deep with the rows changing as the target emits tokens, and a negative control
(q reported over other rows than those drawn from fails the law)."""
import pytest
import torch

from specscope.core.context_rows import ContextRows
from specscope.core.controls import Controls
from specscope.core.drafters.model import RankedHead
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.lm import CachedLM
from specscope.core.scripts import (LATIN, MIXED, NONE, SCRIPTS, ScriptRows, ScriptTable,
                                    char_script, text_script, token_texts)
from specscope.core.sampling import Shaping
from tests.core.helpers import tiny_decoder, tiny_model
from tests.core.test_distribution import chi2_critical, chi_square
from tests.core.test_mtp_drafter import PROMPTS, V, artifact_for, run, trained_head
from tests.core.test_mtp_sampling import PROMPT, VOCAB, exact_joint3


def code(name):
    return SCRIPTS.index(name)


def test_characters_and_tokens_have_scripts():
    assert char_script("a") == char_script("é") == LATIN
    assert char_script("你") == code("han") and char_script("я") == code("cyrillic")
    assert char_script("한") == code("hangul") and char_script("ا") == code("arabic")
    assert char_script("7") == char_script(" ") == char_script(",") == NONE
    assert text_script(" привет") == code("cyrillic")
    assert text_script("日本です") == code("kana")  # kanji with kana: Japanese
    assert text_script("abя") == MIXED and text_script(" 12.") == NONE


def test_a_context_is_the_script_of_a_share_of_its_tokens():
    texts = ["a", "b", "c", "d", "你", "好", "吗", "я", "1", None]
    table = ScriptTable.from_texts(texts)
    assert table.by_script["han"].tolist() == [4, 5, 6]
    assert table.dominant([0, 1, 2, 3]) is None  # Latin: the ranking's own
    assert table.dominant([0, 4, 5]) == "han"  # 2 of 3
    assert table.dominant([0, 1, 2, 4, 8, 9]) is None  # 1 of 4 script-bearing tokens (< SHARE)
    assert table.dominant([0, 1, 2, 4, 4, 4, 4]) is None  # distinct tokens count, not repeats
    assert table.dominant([7, 8]) == "cyrillic" and table.dominant([]) is None
    rows = ScriptRows(table, 2)
    assert rows.rows(rows.script([4, 0])).tolist() == [4, 5]
    assert ScriptRows(table, 0).script([4, 5]) is None


def test_byte_level_tokens_are_read_through_their_bytes():
    class Tok:  # GPT-2's byte alphabet: 'Ġ' is a space; 'ä½ł' is 你 (e4 bd a0); 'ä½' half of it
        def __len__(self):
            return 4

        def convert_ids_to_tokens(self, ids):
            return ["Ġhello", "ä½ł", "ä½", None][:len(ids)]

    assert token_texts(Tok(), 6) == [" hello", "你", None, None, None, None]


def script_rows_for(vocab, han, latin):
    codes = [NONE] * vocab
    for t in han:
        codes[t] = code("han")
    for t in latin:
        codes[t] = LATIN
    texts = [{code("han"): "你", LATIN: "a", NONE: "1"}[c] for c in codes]
    return ScriptTable.from_texts(texts)


def test_the_rows_follow_the_committed_context():
    model = tiny_model("target", 0)
    target = CachedLM(model)
    ranking = torch.arange(V)
    han = list(range(200, 260))
    table = script_rows_for(V, han, latin=range(0, 100))
    rows = ContextRows(target, RankedHead(target, ranking, 50), on=True, scripts=ScriptRows(table, 40))
    rows.see([5, 17, 60])
    ids = rows.row_ids().tolist()
    assert rows.script is None and ids == list(range(50)) + [60]
    rows.see([5, 17, 60, 200, 201, 230])  # 3 of 6 distinct tokens Han
    ids = rows.row_ids().tolist()
    assert rows.script == "han"
    assert ids[:50] == list(range(50)) and ids[50:90] == han[:40]
    assert ids[90:] == [60]  # the context's other tokens (200, 201, 230 are rows already)
    logits = rows.logits(torch.randn(2, model.config.hidden_size))
    assert logits.shape == (2, len(ids))
    ref = torch.randn(1, model.config.hidden_size)
    full = ref @ target.head.weight.T
    assert torch.allclose(rows.logits(ref)[0], full[0, ids], atol=1e-5)


def test_greedy_output_is_the_targets_own_with_script_rows():
    """Half the vocabulary is 'Han' and ranked last: the head drafts them only through the script
    rows, which come on once the context is mostly Han."""
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(4))
    han = ranking[V // 2:].tolist()
    table = script_rows_for(V, han, latin=ranking[:V // 2].tolist())
    scripts = ScriptRows(table, 150)

    def extra(target, draft):
        return {"mtp": lambda: MTPDrafter(target, artifact_for(target.model, trained_head(),
                                                               ranking=ranking, k=100),
                                          context_rows=False, scripts=scripts)}

    decoder = tiny_decoder(vocab_size=V, seed=0, extra=extra)
    script = set(table.by_script["han"][:150].tolist())
    han_drafts = 0
    for prompt in [han[:6], han[10:14] + PROMPTS[0][:2], PROMPTS[1]]:
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=30)
        events, spec = run(decoder, prompt, method="mtp", draft_len=3, max_new_tokens=30)
        assert spec.token_ids == plain.token_ids
        for e in events:
            if type(e).__name__ == "Drafted":
                han_drafts += sum(x in script and x not in set(ranking[:100].tolist()) for x in e.tokens)
    assert han_drafts > 0  # the script rows were drafted from


# the law: 6 tokens, two ranked rows (3, 0); 1 and 4 Latin, 5 Han, the rest without a script.
# The prompt [1, 4, 2] is Latin (rows 3, 0); once the target emits 5 the context is a third Han
# (>= SHARE) and 5 becomes a row, so q's rows change with the drawn tokens.
LAW_TABLE = ScriptTable.from_texts(["1", "a", "1", "1", "a", "你"])


class WrongRows(MTPDrafter):
    """The bug the law test guards against: q reported over other rows than those drawn from
    (here: shifted by one whenever the script rows are on)."""

    def full_q(self, probs):
        ids = self.row_ids()
        if self.rows.script is not None:
            ids = ids.roll(1)
        full = torch.zeros(self.target.vocab_size, dtype=probs.dtype)
        return full.index_copy_(0, ids, probs)


def law_counts(drafter_cls, n):
    ranking = torch.tensor([3, 0, 5, 1, 4, 2])

    def extra(target, draft):
        return {"mtp": lambda: drafter_cls(target, artifact_for(target.model, ranking=ranking, k=2,
                                                                noise_seed=7),
                                           context_rows=False, scripts=ScriptRows(LAW_TABLE, 1))}

    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5, extra=extra)
    expected = exact_joint3(decoder.target.model, Shaping(1.0)) * n
    counts = torch.zeros(VOCAB, VOCAB, VOCAB)
    for seed in range(n):
        controls = Controls(method="mtp", draft_len=3, temperature=1.0, seed=seed, max_new_tokens=4)
        summary = list(decoder.run(PROMPT, controls))[-1].summary
        a, b, c = summary.token_ids[:3]
        counts[a, b, c] += 1
    return decoder, counts, expected


@pytest.mark.slow
def test_sampling_law_with_script_rows():
    decoder, counts, expected = law_counts(MTPDrafter, 2000)
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"chi2={stat:.1f} df={df}"
    drafter = decoder.drafter("mtp")
    q = drafter.propose(PROMPT + [0], 3, Shaping(1.0), torch.Generator().manual_seed(0)).q
    assert drafter.rows.script is None and torch.all(q[:, 5] == 0)
    q = drafter.propose(PROMPT + [5], 3, Shaping(1.0), torch.Generator().manual_seed(0)).q
    assert drafter.rows.script == "han" and torch.all(q[:, 5] > 0)


@pytest.mark.slow
def test_negative_control_q_over_the_wrong_rows_fails_the_law():
    _, counts, expected = law_counts(WrongRows, 2000)
    stat, df = chi_square(counts, expected)
    assert stat > chi2_critical(df), f"chi2={stat:.1f} df={df}: the bug went unseen"


def test_the_multilingual_set_is_in_its_languages_with_report_and_tuning_splits():
    from collections import Counter

    from specscope.prompts import load_prompts

    prompts = load_prompts("multilingual", split=None)
    script = {"chinese": {"han"}, "japanese": {"kana", "han"}, "korean": {"hangul"},
              "russian": {"cyrillic"}, "arabic": {"arabic"}, "spanish": {"latin"}}
    assert Counter(p.category for p in prompts) == {c: 5 for c in script}
    assert Counter(p.split for p in prompts) == {"report": 18, "tuning": 12}
    for p in prompts:
        counts = Counter(char_script(ch) for ch in p.text if char_script(ch) != NONE)
        assert SCRIPTS[counts.most_common(1)[0][0]] in script[p.category], p.text
    assert len(load_prompts("multilingual", split="report")) == 18
