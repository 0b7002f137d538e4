"""The one batched greedy generator (core/greedy.py): the model's argmax answers, whatever its
generation_config.json asks for, through every caller that needs the target's answers
(self-distillation for the MTP head, VocabTrim's calibration)."""
from tests.core.helpers import model_greedy

PROMPTS = [[5, 17, 230, 41], [900, 3, 3, 3, 77, 12], [8]]  # of different lengths: left padding
N = 24


def cut(answer, eos_ids):
    return next((answer[:i + 1] for i, t in enumerate(answer) if t in eos_ids), answer)


def pushy(model):
    """The model's generation_config asks for sampling, top-k and a repetition penalty."""
    own = model.generation_config
    own.repetition_penalty, own.do_sample, own.temperature, own.top_k = 2.0, True, 0.7, 3
    return own


def assert_plain_greedy(answers, model, prompts, eos_ids):
    plain = [cut(model_greedy(model, p, N), eos_ids) for p in prompts]
    # the tiny model repeats itself: a repetition penalty would change its answers
    assert any(len(set(a)) < len(a) for a in plain)
    assert answers == plain


def test_self_distillation_answers_are_the_models_greedy_whatever_its_generation_config():
    from specscope.core.mtp_train import self_distill
    from specscope.core.tiny import tiny_model

    model = tiny_model("target", seed=0)
    own = pushy(model)
    assert_plain_greedy(self_distill(model, PROMPTS, N, {2}, 0), model, PROMPTS, {2})
    assert model.generation_config is own and own.repetition_penalty == 2.0  # given back


def test_trims_greedy_answers_are_the_models_greedy_whatever_its_generation_config(tiny_session):
    from specscope.trim import greedy_batch

    model = tiny_session.target.model
    saved = model.generation_config
    try:
        model.generation_config = saved.__class__(**saved.to_dict())
        pushy(model)
        prompts = [tiny_session.encode(t) for t in ("def add(a, b):", "Hello there", "x")]
        answers = greedy_batch(tiny_session, prompts, N)
        assert_plain_greedy(answers, model, prompts, tiny_session.decoder.eos_ids)
    finally:
        model.generation_config = saved


def test_sampled_answers_follow_the_seed_not_the_models_settings():
    from specscope.core.greedy import generate_answers
    from specscope.core.tiny import tiny_model

    model = tiny_model("target", seed=0, init=0.15)
    a = generate_answers(model, PROMPTS, 12, set(), 0, temperature=1.0, seed=3)
    own = model.generation_config
    own.repetition_penalty, own.top_k, own.temperature = 2.0, 1, 0.01  # top_k 1: greedy
    assert generate_answers(model, PROMPTS, 12, set(), 0, temperature=1.0, seed=3) == a
    assert a != generate_answers(model, PROMPTS, 12, set(), 0)  # sampled, not the top-1
