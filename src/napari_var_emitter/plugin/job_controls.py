"""Run / Cancel buttons, a progress bar and a status line for a dock widget that runs one napari
worker at a time (shared by the Predict and Fine-tune widgets)."""

from __future__ import annotations

from magicgui.widgets import Label, ProgressBar, PushButton
from qtpy.QtWidgets import QSizePolicy


def status_label() -> Label:
    """A status line whose long messages wrap (and grow it) instead of widening the dock."""
    label = Label(value="")
    label.native.setWordWrap(True)
    label.native.setMinimumWidth(220)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding)
    return label


class JobControls:
    """Mixin for a magicgui Container. `_job_controls(text)` makes run_button, cancel_button,
    progress and status (returned for the container's widget list; Cancel is wired here, Run is
    the widget's own); `_launch` starts a worker; `_job_ended` makes Run available again."""

    def _job_controls(self, run_text: str) -> list:
        self.worker = None
        self.run_button, self.cancel_button = PushButton(text=run_text), PushButton(text="Cancel", enabled=False)
        self.progress, self.status = ProgressBar(label="progress", min=0, max=1, value=0), status_label()
        self.cancel_button.changed.connect(self.cancel)
        return [self.run_button, self.cancel_button, self.progress, self.status]

    def _launch(self, worker, total: int, status: str) -> None:
        """Start `worker` (made with _start_thread=False) with the progress bar at 0 of `total`."""
        self.worker = worker
        self.progress.max, self.progress.value = total, 0
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = status
        worker.start()

    def cancel(self) -> None:
        """Ask the worker to stop: at its next yield, and at its next batch where the job checks
        a Progress (`job_progress`)."""
        if self.worker is not None:
            self.worker.quit()
            if getattr(self, "job_progress", None) is not None:
                self.job_progress.stop.set()
            self.status.value = "cancelling…"

    def _job_ended(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
