"""`specscope hrad train`: H-RAD's draft-length predictor (SpecBranch) for `--draft-len learned`.

The target's greedy answers to calibration prompts (shared with `mtp train`'s cache), its
hidden states over them, one teacher-forced drafter pass for the labels (how many of the
drafter's next tokens the target accepts), a small classifier fitted for --seconds, and its
held-apart estimate; train/hrad.py is the pipeline, core/hrad.py the predictor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import Dtype, Profile, friendly_errors
from specscope.train import DEFAULT_HELD

hrad_app = typer.Typer(help="H-RAD (SpecBranch): train a draft-length predictor on the target's hidden states.",
                       no_args_is_help=True, rich_markup_mode=None)


@hrad_app.command("train")
@friendly_errors
def train(
    profile: Profile = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="Calibration prompts (default: the packaged set's calibration split; the estimate on its tuning split).")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Training prompts per category.")] = 8,
    held: Annotated[int, typer.Option("--held", metavar="N", help="Held-apart estimate: 2 x N prompts.")] = DEFAULT_HELD,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Length of the target's answers.")] = 96,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Prompts per self-distillation batch.")] = 8,
    cap: Annotated[int, typer.Option("--cap", metavar="C", help="Classes a = 0..C accepted tokens (C: C or more, the implicit outcome).")] = 6,
    width: Annotated[int, typer.Option("--width", metavar="W", help="The classifier's hidden width.")] = 256,
    seconds: Annotated[float, typer.Option("--seconds", metavar="S", help="The fit's wall time (at least one epoch).")] = 60.0,
    lr: Annotated[float, typer.Option("--lr", metavar="LR", help="AdamW learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed", metavar="N")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Artifact path (default: the cache, per profile; where --draft-len learned looks).")] = None,
    dtype: Dtype = None,
) -> None:
    """Train H-RAD's predictor; `--draft-len learned` then sizes every draft with it."""
    from rich.console import Console

    from specscope.core.errors import SpecScopeError
    from specscope.frontends.loading import check_options, loading_progress, quiet_libraries, resolve_auto
    from specscope.profiles import load_profile
    from specscope.train.hrad import HradOptions, run_hrad

    if min(limit, held, max_new_tokens, batch, width) < 1 or not 1 <= cap <= 16:
        raise SpecScopeError("--limit, --held, --max-new-tokens, --batch and --width must be >= 1, "
                             "--cap between 1 and 16")
    if seconds <= 0 or lr <= 0:
        raise SpecScopeError("--seconds and --lr must be > 0")
    prof = load_profile(profile)
    if prof.backend == "auto":  # the predictor reads torch's hidden states (as mtp train)
        from dataclasses import replace

        prof = replace(prof, backend="torch")
    check_options(prof, None, dtype, None)
    quiet_libraries()
    console = Console(stderr=True)
    prof, _ = resolve_auto(prof, dtype, None, None, console, say=False)
    from specscope.cli.mtp import Bars

    o = HradOptions(profile=prof, prompts=prompts, limit=limit, held=held,
                    max_new_tokens=max_new_tokens, batch=batch, cap=cap, width=width,
                    seconds=seconds, lr=lr, seed=seed, out=out, dtype=dtype)
    with Bars(console) as bars:
        done = run_hrad(o, bars, lambda: loading_progress(console, lines=True))
    print_report(done)


def print_report(done: dict) -> None:
    r, est = done["result"], done["result"]["estimate"]
    print(f"H-RAD predictor for {done['target']} + drafter {done['drafter']} ({done['dtype']})")
    print(f"  data: {done['n_train']} training prompts, {done['n_held']} held apart; answers "
          f"{done['gen_s']:.0f} s ({done['answers_resumed']} from the cache), hidden states "
          f"{done['hidden_s']:.0f} s, labels {done['labels_s']:.0f} s")
    print(f"  fit: {r['examples']} positions, {r['epochs']} epochs, {r['seconds']:.0f} s, "
          f"loss {r['train_loss']:.3f}, training accuracy {r['train_accuracy']}")
    if est.get("examples"):
        fixed = ", ".join(f"k={k}: {v['accepted']:.2f}/{v['discarded']:.2f}" for k, v in est["fixed"].items())
        print(f"  held-apart estimate ({est['examples']} positions): loss {est['loss']:.3f}, "
              f"accuracy {est['accuracy']:.1%}; outcomes {est['modes']}")
        print(f"    accepted/discarded drafted tokens per step: rule {est['rule']['accepted']:.2f}/"
              f"{est['rule']['discarded']:.2f}; fixed {fixed}")
    print(f"  total {done['total_s']:.0f} s; wrote {done['path']}")
    print(f"  use it: specscope generate \"...\" --profile {done['profile']} -m draft -k learned")
