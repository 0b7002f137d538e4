"""Training FastMTP's head, as a library: `specscope mtp train` only parses options, checks
them and draws the progress this package reports.

- `events`: what training reports, as plain data, through one callback (`on_event`); a long
  stage reports at least every `HEARTBEAT_S` seconds, inside a batch too.
- `corpus`: the prompts and extra text trained on, and which are held apart.
- `caches`: the target's answers (self-distillation) and its hidden states, cached on disk
  beside the artifact, so an interrupted run resumes where it stopped.
- `loop`: the optimizer, the learning-rate schedule, keep-best and checkpoints.
- `state`: the resume state beside the artifact (optimizer, schedule position, float32 weights,
  data order), so `--resume` continues the run it resumes instead of restarting it.
- `run`: the whole pipeline, from options to the artifact and its report.

The head, its artifact and the loss live in core (core/mtp.py, core/mtp_train.py).
"""

DEFAULT_VOCAB_K, DEFAULT_HELD = 8192, 4  # `mtp train`'s --vocab-k and --held
