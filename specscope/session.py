"""Build a ready-to-run SpecDecoder from a profile: models, tokenizer, drafters, prompt encoding.

Shared by every front end (generate, chat, bench, trim). Imports no front-end library.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from specscope.core.controls import Controls
from specscope.core.drafters.base import DraftSettings, NoDrafter
from specscope.core.drafters.jacobi import CausalRefiner, JacobiDrafter
from specscope.core.drafters.layerskip import LayerSkipDrafter
from specscope.core.drafters.lookup import LookupDrafter
from specscope.core.drafters.model import ModelDrafter, RankedHead
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.embedded import Progress
from specscope.core.engine import SpecDecoder
from specscope.core.errors import SpecScopeError
from specscope.core.layerskip_search import best_known_skip
from specscope.core.lm import CachedLM
from specscope.core.models import (check_vocab_match, eos_ids, load_causal_lm, load_tokenizer,
                                    same_tokenizer_files)
from specscope.core.window import WindowedLM
from specscope.drafting import start_worker, uses_worker
from specscope.profiles import AUTO, Profile

from specscope.core.methods import METHODS, NEEDS_DRAFTER, NEEDS_MTP_HEAD  # noqa: F401 (re-exported)


def mtp_head(profile: Profile):
    """The path of the profile's trained FastMTP head, or None."""
    from specscope.core.mtp import artifact_path

    path = artifact_path(profile.name)
    return path if path.is_file() else None


def no_mtp_head(profile: Profile) -> SpecScopeError:
    from specscope.train.budget import train_command

    return SpecScopeError(f"no trained FastMTP head for profile '{profile.name}': "
                          f"{train_command(profile)}")


def mtp_factories(profile: Profile, target, tokenizer) -> dict:
    """The drafters of the profile's FastMTP head (mtp, mtp-tree) as it is on disk now; none
    without a head."""
    head_path = mtp_head(profile)
    if head_path is None:
        return {}
    factories = {}
    artifact = []  # read once, shared by the chain and the tree

    def scripts():
        """The profile's script rows (core/scripts.py), or None."""
        if profile.script_rows <= 0 or tokenizer is None:
            return None
        from specscope.core.scripts import ScriptRows, script_table

        return ScriptRows(script_table(tokenizer, target.vocab_size), profile.script_rows)

    def mtp_drafter():
        from specscope.core.drafters.mtp import MTPDrafter
        from specscope.core.mtp import load_artifact
        from specscope.core.packed import pack_model
        from specscope.core.quant import quantize_model

        if not artifact:
            loaded = load_artifact(head_path, target, profile.target, tokenizer)
            # the head is this method's drafter, so --draft-quant applies to its own linears
            # (W and the decoder layer; the LM head it shares is the target's)
            quantize_model(loaded.head, profile.draft_quant)
            pack_model(loaded.head)  # float32 on a CPU: what is left unquantized
            artifact.append(loaded)
        return MTPDrafter(target, artifact[0], scripts=scripts())

    factories["mtp"] = mtp_drafter

    def mtp_tree():
        from specscope.core.drafters.mtp_tree import MTPTreeDrafter

        mtp_drafter()  # reads the artifact once
        return MTPTreeDrafter(target, artifact[0], scripts=scripts())

    factories["mtp-tree"] = mtp_tree
    return factories


def length_predictor(profile: Profile, target, drafter_lm, tokenizer) -> tuple:
    """`--draft-len learned`: (a loader of the profile's H-RAD predictor (core/hrad.py), read
    and checked against this target, drafter and tokenizer when first used, or None; the line
    that refuses it where there is none)."""
    from specscope.core.hrad import artifact_path, load_artifact, train_command
    from specscope.core.vocab import model_fingerprint

    path = artifact_path(profile.name)
    if drafter_lm is None or not path.is_file():
        return None, (f"no trained draft-length predictor for profile '{profile.name}': "
                      f"make one with `{train_command(profile.name)}`")
    # taken before quantization: a quantized head has no plain weight to fingerprint
    fingerprints = (model_fingerprint(target, profile.target),
                    model_fingerprint(drafter_lm, profile.drafter))
    loaded = []

    def load():
        if not loaded:
            loaded.append(load_artifact(path, target, profile.target, drafter_lm, profile.drafter,
                                        tokenizer, fingerprints))
        return loaded[0]

    return load, ""


def head_facts(profile: Profile) -> dict | None:
    """What users want to know of the profile's head: its held-out estimate of acceptance at
    draft steps 1..depth, its training time (all runs), when it was written, and its last
    `mtp eval` on the report split (None if never run); None without a head."""
    import datetime

    from specscope.core.mtp import read_meta

    path = mtp_head(profile)
    if path is None:
        return None
    try:
        training = read_meta(path)[0].get("training", {})
    except SpecScopeError:
        return None
    from specscope.train.eval_record import DEFAULT_EVAL, read_evals

    when = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return {"path": path, "acceptance": training.get("estimate_acceptance") or [],
            "seconds": training.get("seconds", 0.0), "runs": 1 + len(training.get("earlier", [])),
            "written": when, "estimate_prompts": training.get("n_estimate"),
            "eval": read_evals(path).get(DEFAULT_EVAL)}


def measured_priors(profile: Profile) -> tuple[dict[int, float] | None, float | None]:
    """This machine's measured verify curve and drafted-token cost for the profile's formats,
    from the cache `specscope doctor` (or an auto profile) filled; (None, None) if not measured."""
    from specscope.core.machine import load_report, machine_info
    from specscope.core.model_config import read_config

    report = load_report(machine_info(profile.device))
    config = read_config(profile.target) if report else None
    target = report.costs(config).get((profile.dtype, profile.quant)) if config else None
    if target is None:
        return None, None
    dconfig = read_config(profile.drafter) if profile.drafter else None
    drafter = report.costs(dconfig).get((profile.dtype, profile.draft_quant)) if dconfig else None
    return target.curve(), (drafter.t(1) / target.t(1) if drafter else None)


@dataclass
class Session:
    profile: Profile
    decoder: SpecDecoder
    tokenizer: object
    target: CachedLM
    drafter_lm: CachedLM | None
    vocab: object | None = None  # a loaded VocabTrim artifact, if any
    worker: object | None = None  # the drafter's worker process (drafting.py), if any

    def close(self) -> None:
        """End the drafter's worker, if any (it also ends at exit, and with this process)."""
        if self.worker is not None:
            self.worker.close()

    def encode(self, messages: list[dict[str, str]] | str) -> list[int]:
        """Token ids for a prompt (a string) or a conversation (a list of role/content dicts)."""
        return encode_prompt(self.tokenizer, messages, self.profile.chat_template,
                             self.profile.system_prompt)

    def reload_mtp_head(self) -> bool:
        """Take the profile's FastMTP head as it is on disk now (one trained while this session
        was open, e.g. from chat): True when mtp and mtp-tree can now draft with it."""
        if self.profile.backend != "torch" or self.profile.target_url:
            return False
        fresh = mtp_factories(self.profile, self.target, self.tokenizer)
        for method in NEEDS_MTP_HEAD:
            self.decoder._drafters.pop(method, None)
        self.decoder.factories.update(fresh)
        return bool(fresh)

    def controls(self, **overrides) -> Controls:
        return make_controls(self.profile, **overrides)

    def check(self, controls: Controls, prompt_ids: list[int] | None = None) -> None:
        """Refuse settings this session cannot run, before any output is shown."""
        if controls.method in NEEDS_MTP_HEAD and controls.method not in self.decoder.methods:
            raise no_mtp_head(self.profile)
        drafter = self.decoder.drafter(controls.method)
        if controls.adaptive and controls.adaptive_rule == "learned":
            self.decoder.learned_policy(controls)  # refuses: no predictor, another pair, no draft model
        if controls.vocab_top_k is not None and drafter.name in NEEDS_MTP_HEAD:  # its own ranking
            drafter.configure(DraftSettings(controls.vocab_top_k))
        elif controls.vocab_top_k is not None:
            if self.vocab is None:
                raise SpecScopeError("a drafter vocabulary size needs a trimmed head (--trimmed PATH)")
            if not 1 <= controls.vocab_top_k <= len(self.vocab.ranking):
                raise SpecScopeError(f"vocab top-k must be between 1 and {len(self.vocab.ranking)}, "
                                     f"got {controls.vocab_top_k}")
        if prompt_ids is not None:
            self.decoder.check_prompt(prompt_ids)


def make_controls(profile: Profile, **overrides) -> Controls:
    """Controls from a profile's defaults, with the given (non-None) overrides; validated."""
    named = profile.method not in (None, AUTO)
    c = Controls(
        method=profile.method if named else ("draft" if profile.drafter else "ar"),
        draft_len=profile.start_len,
        adaptive=profile.adaptive_rule is not None,
        adaptive_rule=profile.adaptive_rule or "cost",
        temperature=profile.temperature,
        top_p=profile.top_p,
        max_new_tokens=profile.max_new_tokens,
        draft_window=profile.draft_window,
        overlap=profile.overlap,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(c, key, value)
    if profile.backend == "llama.cpp" and c.draft_window:
        raise SpecScopeError("--draft-window: the llama.cpp backend keeps the draft model's whole "
                             "cache (use --backend torch for a bounded one)")
    c.validate()
    return c


def encode_prompt(tokenizer, messages, chat_template: bool, system_prompt: str | None = None) -> list[int]:
    if isinstance(messages, str):
        if not messages.strip():
            raise SpecScopeError("the prompt is empty")
        messages = [{"role": "user", "content": messages}]
    if chat_template and getattr(tokenizer, "chat_template", None):
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    text = "\n".join(m["content"] for m in messages)
    return list(tokenizer(text)["input_ids"])


def model_factories(target, drafter_lm, vocab=None) -> dict:
    """The drafters built on a draft model (none without one), for either backend."""
    if drafter_lm is None:
        return {}
    ranked = None if vocab is None else RankedHead(drafter_lm, vocab.ranking, vocab.k)

    def model_drafter() -> ModelDrafter:  # one ranked head copy, shared by every drafter
        return ModelDrafter(drafter_lm, target.vocab_size, ranked)

    return {"draft": model_drafter,
            "tree": lambda: TreeDrafter(model_drafter()),
            "pool": lambda: PoolDrafter(model_drafter()),
            "jacobi": lambda: JacobiDrafter(CausalRefiner(model_drafter()))}


def load_llamacpp_session(profile: Profile, progress: Progress | None = None) -> Session:
    """The profile's GGUF files on llama.cpp (core/llamacpp.py): the methods that need only
    logits (frontends/preflight.py refuses the others before this)."""
    from specscope.core.llamacpp_load import check_vocab, gguf_tokenizer, load_gguf_lm
    from specscope.core.models import check_head_widths

    target = load_gguf_lm(profile.target, progress)
    tokenizer = gguf_tokenizer(profile.target, progress)
    check_vocab(target, tokenizer, profile.target)
    drafter_lm = None
    if profile.drafter:
        drafter_lm = load_gguf_lm(profile.drafter, progress)
        check_vocab(drafter_lm, tokenizer, profile.drafter)
        check_head_widths(target.vocab_size, drafter_lm.vocab_size)
    factories = {"ar": NoDrafter, **model_factories(target, drafter_lm), "lookup": LookupDrafter}
    # what ran, as every front end shows it: the GGUF's own weight types
    profile = replace(profile, backend="llama.cpp", dtype="gguf", quant=target.quant,
                      draft_quant=drafter_lm.quant if drafter_lm else "none", draft_window=0)
    eos = eos_ids(tokenizer, None, profile.eos_tokens) | target.eos_ids()
    decoder = SpecDecoder(target, tokenizer, factories, eos)
    decoder.verify_curve, decoder.draft_ratio = measured_priors(profile)
    decoder.no_predictor = ("--draft-len learned reads the target's hidden states: not on the "
                            "llama.cpp backend (use --backend torch)")
    return Session(profile, decoder, tokenizer, target, drafter_lm)


def load_session(profile: Profile, dtype: str | None = None, device: str | None = None,
                 trimmed: str | None = None, progress: Progress | None = None) -> Session:
    if profile.target_url:  # a served target (remote/, docs/remote.md)
        from specscope.remote.session import load_remote

        return Session(*load_remote(profile, dtype, device, trimmed, progress, model_factories))
    if AUTO in (dtype or profile.dtype, profile.draft_quant, profile.backend):  # not resolved
        from specscope.auto import resolve

        if profile.backend == AUTO:  # a command that chose nothing first (lesson, trim,
            profile = replace(profile, backend="torch")  # layerskip-search): torch's modules

        profile, dtype = resolve(profile, dtype, None, device, progress)[0], None
    if profile.backend == "llama.cpp":
        return load_llamacpp_session(profile, progress)
    dtype = dtype or profile.dtype
    device = device or profile.device
    profile = replace(profile, dtype=dtype, device=device)
    tokenizer = load_tokenizer(profile.target, progress, dtype)
    target_model = load_causal_lm(profile.target, dtype, device, progress)
    # Each model's logits check runs once it is quantized: a check before would read (and make
    # resident) the unquantized weights that a quantized model no longer needs.
    target = CachedLM(target_model, check=False)
    drafter_lm = None
    factories = {"ar": NoDrafter}
    if profile.drafter:
        drafter_lm = WindowedLM(load_causal_lm(profile.drafter, dtype, device, progress),
                                check=False, window=profile.draft_window)
        same = same_tokenizer_files(profile.target, profile.drafter, dtype)
        draft_tok = tokenizer if same else load_tokenizer(profile.drafter, progress, dtype)
        check_vocab_match(target, drafter_lm, tokenizer, draft_tok)
    vocab = None
    trimmed = trimmed or profile.trimmed
    if trimmed:
        if drafter_lm is None:
            raise SpecScopeError("a trimmed head needs a profile with a drafter")
        from specscope.core.vocab import load_trimmed

        vocab = load_trimmed(trimmed, profile, drafter_lm, target, tokenizer)
    predictor = length_predictor(profile, target, drafter_lm, tokenizer)  # fingerprints first
    # Quantize after the artifact's fingerprint check, which reads the original head.
    target.quantize(profile.quant, progress)
    target.check_logits()
    if drafter_lm is not None:
        drafter_lm.quantize(profile.draft_quant, progress)
        drafter_lm.check_logits()
    factories.update(model_factories(target, drafter_lm, vocab))
    factories["lookup"] = LookupDrafter
    factories["layerskip"] = lambda: LayerSkipDrafter(target, best_known_skip(target_model))
    factories.update(mtp_factories(profile, target, tokenizer))
    worker = None
    if drafter_lm is not None and uses_worker(profile):  # the drafter in its own process
        worker, through_worker = start_worker(profile, target, vocab, progress)
        factories.update(through_worker)
    decoder = SpecDecoder(target, tokenizer, factories, eos_ids(tokenizer, target_model, profile.eos_tokens))
    decoder.verify_curve, decoder.draft_ratio = measured_priors(profile)
    decoder.length_predictor, decoder.no_predictor = predictor
    return Session(profile, decoder, tokenizer, target, drafter_lm, vocab, worker)
