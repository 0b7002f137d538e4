"""M in chat: train the profile's FastMTP head without leaving the TUI (screens/training.py
shows it). The run is `specscope mtp train --json` in a child process (the same command a
terminal would run, with its budget, its plan and its resume); once it has written the head, the
session takes it and `m` reaches mtp and mtp-tree.
"""
from __future__ import annotations

from specscope.frontends.train_events import TrainingRun
from specscope.tui.screens.training import TrainingScreen


class TrainingActions:
    """Mixed into SpecScopeApp (which provides profile, session, controls_panel, notify, ...)."""

    training: TrainingRun | None = None
    train_args: list[str] = []  # more `mtp train` options (tests give a tiny budget)

    def action_train_head(self) -> None:
        if self.session is None:
            self.notify("The models are still loading.", severity="warning")
            return
        if self.profile.backend != "torch" or self.profile.target_url:
            self.notify("FastMTP heads are trained on the torch backend's local target.",
                        severity="warning")
            return
        if self.training is None or not self.training.running:
            from specscope.core.embedded import cache_dir

            log = cache_dir() / "mtp" / f"{self.profile.name}.train.log"
            self.training = TrainingRun(self.profile.path or self.profile.name, list(self.train_args),
                                        log, self._training_changed)
            self.training.start()
        self.push_screen(TrainingScreen(self.training))

    def _training_changed(self) -> None:
        """From the reader thread: hand over to the app's loop (nothing once it has gone)."""
        try:
            self.call_from_thread(self.training_changed)
        except RuntimeError:
            pass

    def training_changed(self) -> None:
        if isinstance(self.screen, TrainingScreen):
            self.screen.refresh_view()
        run = self.training
        if run is None or run.view.returncode is None:
            return
        if run.view.result and self.session.reload_mtp_head():
            self.controls_panel.set_session(self.session.decoder.methods,
                                            self.controls_panel.vocab_size, self.controls_panel.vocab_default)
            est = " ".join(f"{a:.2f}" for a in run.view.result.get("estimate_acceptance") or [])
            self.notify(f"FastMTP head ready (held-out acceptance {est}): m reaches mtp and mtp-tree.")
        elif run.view.error:
            self.notify(f"training failed: {run.view.error}", severity="error")

    def stop_training(self) -> None:
        """On quit: stop the child like Ctrl-C (it keeps what it did)."""
        if self.training is not None:
            self.training.stop()
