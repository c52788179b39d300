"""Run / Cancel buttons, a progress bar and a status line for a dock widget that runs one napari
worker at a time (shared by the Predict, Fine-tune and 3-D widgets)."""

from __future__ import annotations

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QSizePolicy


MIN_WIDTH_PX = 220  # a status line's narrowest width


class _HeightFollowsWidth(QObject):
    """Event filter: a wrapped label's fixed height set again when its width changes."""

    def eventFilter(self, label, event) -> bool:
        if event.type() == QEvent.Type.Resize and event.size().width() != event.oldSize().width():
            _fit_height(label)
        return False


def _fit_height(label) -> None:
    """A wrapped QLabel's height set to its text's at its width (its height for a width never
    below its minimum: that is let go first)."""
    label.setMinimumHeight(0)
    label.setFixedHeight(max(0, label.heightForWidth(max(label.width(), MIN_WIDTH_PX))))


class StatusLabel(Label):
    """A status line whose long messages wrap (and grow it) instead of widening the dock. Its
    height is its text's: a dock's layout does not ask a wrapped label for its height, and
    squeezed long messages to one clipped line; nor does it shrink a label that a longer message
    grew (a short one then sat in a blank box). The height follows the dock's width."""

    def __init__(self) -> None:
        super().__init__(value="")
        self.native.setWordWrap(True)
        self.native.setMinimumWidth(MIN_WIDTH_PX)
        self.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # as tall as its text, no taller: spare height in a scrolling dock goes to plots, not gaps
        self.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._follower = _HeightFollowsWidth(self.native)
        self.native.installEventFilter(self._follower)

    @property
    def value(self) -> str:
        return Label.value.fget(self)

    @value.setter
    def value(self, text: str) -> None:
        Label.value.fset(self, text)
        _fit_height(self.native)


PROGRESS_MS = 250  # how often a running job's progress is shown


class JobControls:
    """Mixin for a magicgui Container. `_job_controls(text)` makes run_button, cancel_button (in one
    row), progress and status (returned for the container's widget list; Cancel is wired here, Run
    is the widget's own); `_launch` starts a worker, and shows its progress every PROGRESS_MS when the
    widget gave the job a Progress (`job_progress`); `_job_ended` makes Run available again."""

    def _job_controls(self, run_text: str) -> list:
        self.worker = None
        self.run_button, self.cancel_button = PushButton(text=run_text), PushButton(text="Cancel", enabled=False)
        self.progress, self.status = ProgressBar(label="progress", min=0, max=1, value=0), StatusLabel()
        self.cancel_button.changed.connect(self.cancel)
        self.progress_timer = QTimer(interval=PROGRESS_MS)
        self.progress_timer.timeout.connect(self._show_progress)
        # Run and Cancel side by side: the bar pinned under a dock's settings stays low on a laptop
        buttons = Container(layout="horizontal", widgets=[self.run_button, self.cancel_button], labels=False)
        buttons.margins = (0, 0, 0, 0)
        return [buttons, self.progress, self.status]

    def _launch(self, worker, total: int, status: str) -> None:
        """Start `worker` (made with _start_thread=False) with the progress bar at 0 of `total`."""
        self.worker = worker
        self.progress.max, self.progress.value = total, 0
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = status
        worker.start()
        if getattr(self, "job_progress", None) is not None:
            self.progress_timer.start()

    def _show_progress(self) -> None:
        """Frames done, frames/s and time left from the job's Progress (read from its thread); once
        cancelled, that it is being cancelled."""
        self.progress.value = self.job_progress.done
        if self.worker is not None:
            self.status.value = "cancelling…" if self.job_progress.stop.is_set() else self.job_progress.describe()

    def cancel(self) -> None:
        """Ask the worker to stop: at its next yield, and at its next batch where the job checks
        a Progress (`job_progress`)."""
        if self.worker is not None:
            self.worker.quit()
            if getattr(self, "job_progress", None) is not None:
                self.job_progress.stop.set()
            self.status.value = "cancelling…"

    def _showing_results(self) -> None:
        """The job is over and its results are going into the viewer: Cancel and the progress
        timer stop; Run stays off until `_job_ended`."""
        self.progress_timer.stop()
        self.cancel_button.enabled, self.status.value = False, "showing the localisations…"

    def _forget_last_run(self, *_) -> None:
        """Another dataset is chosen: the last run's progress and status say nothing about it
        (a running job's stay, until it ends)."""
        if self.worker is None:
            self.progress.value, self.status.value = 0, ""

    def _job_ended(self) -> None:
        self.progress_timer.stop()
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
