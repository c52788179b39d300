"""Dock widgets that fit a laptop screen: each of the plugin's widgets scrolls inside its dock
instead of growing the napari window (1366x768 with Predict and an analysis widget open), and one
opened where its column has no room left goes in as a tab beside the plugin's last dock there."""

from __future__ import annotations

import re

from magicgui.widgets import Container
from napari.utils.notifications import show_warning
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import (QAbstractSpinBox, QComboBox, QDockWidget, QDoubleSpinBox, QLabel, QMainWindow, QScrollArea,
                            QSpinBox, QVBoxLayout, QWidget)

from .job_controls import JobControls

SCROLLBAR_PX = 20  # room beside the widest row for the vertical scroll bar
# the least height of a dock's scroll area (three rows of settings): napari gives a dock just added
# nearly all of its column and the others their least height (at 1366x768 beside Filter, Predict's
# settings shrank to 69 px before there was a least height); three docks in one column (Predict,
# Fine-tune, 3-D) fit a 768 px screen with two-line statuses (at 120 px the window grew to 829 px)
MIN_SCROLL_PX = 80
# a dock opened where its column would give each of its stacks of docks less height than this (px)
# goes in as a tab: at 1366x768 Predict, Filter, Drift and Render one under the other got 118-211
# px each, Predict's settings a 60 px strip that showed one row; two docks get ~330 px each there
ROOMY_DOCK_PX = 250
DOCK_FRAME_NAME = "var-emitter dock"  # the object name of the frames napari docks (make_dock)
COMBO_CHARS = 16  # a list of files or models is this many characters wide; longer names are elided


def fixed_width_combo(combo) -> None:
    """A magicgui ComboBox that does not widen the dock with its longest choice (a model file's
    folder and name, say): as wide as COMBO_CHARS characters, its list as wide as it needs."""
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(COMBO_CHARS)


QT_VALIDATED = (QSpinBox, QDoubleSpinBox)  # boxes whose own validate() says what they can take


class _RejectedEntry(QObject):
    """Filter on a number box, where the keys typed arrive: a comma or a point typed in a box with
    decimals is its decimal point (the boxes read the other as a thousands separator: a gain typed
    "0,46" was read as 46, and "0.46" would be in a locale with a decimal comma); an entry the box
    cannot take is said in a notification, where Qt silently put the last value back (out of
    range, or not a number, once ended with Return or by leaving the box) or dropped the key typed
    (one that no more typing could make a number in range: "95" as a quantum efficiency [0-1], or
    the last 0 of 50000 as a pixel size, which left 5000). At such a key the entry is put back to
    the box's value, selected, and said once until a key is taken or the entry ends (dropping the
    key alone left a number the user never meant, which Return then took: 600 typed as the last of
    500 frames became 60); a digit past the box's decimals alone is dropped, and said (0.8255 in a
    box of 3 decimals stays 0.825). Keys with Ctrl, Alt or Cmd held are shortcuts, left to the box.
    Whole-number boxes (magicgui's SpinBox is superqt's QLargeIntSpinBox, which takes any text and
    puts it in range silently: 150 as the last of 100 frames became 100) are judged here (_state)."""

    def __init__(self, box: QAbstractSpinBox) -> None:
        super().__init__(box)
        self.said = False  # a dropped key was said in this entry

    def eventFilter(self, box, event) -> bool:
        ended = (event.type() == QEvent.Type.FocusOut
                 or (event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)))
        if ended:
            self.said = False
            text = box.lineEdit().text()
            if _state(box, text, len(text)) != QValidator.State.Acceptable:
                _say_rejected(box, text)
                if not isinstance(box, QT_VALIDATED):  # superqt's would clamp it, or fail on "-"
                    box.lineEdit().setText(_shown_value(box))
            return False
        if event.type() != QEvent.Type.KeyPress:
            return False
        text = event.text()
        shortcut = event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                                        | Qt.KeyboardModifier.MetaModifier)
        if shortcut or not (text and text.isprintable()):  # Backspace, arrows, Ctrl+A ...: as Qt takes them
            self.said = False
            return False
        if isinstance(box, QDoubleSpinBox) and text in ",." and text != box.locale().decimalPoint():
            text = box.locale().decimalPoint()  # either mark typed is the decimal point, whatever the locale
        line = box.lineEdit()
        start, end = ((line.selectionStart(), line.selectionEnd()) if line.hasSelectedText()
                      else (line.cursorPosition(), line.cursorPosition()))
        typed = line.text()[:start] + text + line.text()[end:]
        if _state(box, typed, start + len(text)) == QValidator.State.Invalid:
            extra_decimal = _too_many_decimals(box, typed)
            if not self.said:
                if extra_decimal:  # a value copied from a sheet with more digits: the rest stands
                    show_warning(f"{_label(box)}{box.decimals()} decimals at most; the key {text!r} was not taken")
                else:
                    _say_rejected(box, typed)
            self.said = True
            if not extra_decimal:
                line.setText(_shown_value(box))
                line.selectAll()
            return True
        self.said = False
        if text != event.text():
            line.insert(text)
            return True
        return False


def _state(box: QAbstractSpinBox, text: str, position: int) -> QValidator.State:
    """Whether `box` can take `text`: Qt's boxes say it themselves; a whole-number box that takes any
    text (superqt's) is judged here as it reads it (digits, a minus first): a number in range is
    acceptable, one that more digits could bring into range intermediate, anything else invalid."""
    if isinstance(box, QT_VALIDATED):
        return box.validate(text, position)[0]
    if not re.fullmatch(r"-?\d*", text):  # what superqt's box reads: digits, a minus first
        return QValidator.State.Invalid
    if text in ("", "-"):
        return QValidator.State.Intermediate
    value = int(text)
    if box.minimum() <= value <= box.maximum():
        return QValidator.State.Acceptable
    closer = 0 <= value < box.minimum() or box.maximum() < value < 0  # more digits move it away from 0
    return QValidator.State.Intermediate if closer else QValidator.State.Invalid


def _typed(box: QAbstractSpinBox, text: str) -> str:
    """`text` without the box's prefix and suffix (superqt's whole-number box has neither)."""
    prefix, suffix = (box.prefix(), box.suffix()) if hasattr(box, "prefix") else ("", "")
    return text.removeprefix(prefix).removesuffix(suffix).strip()


def _shown_value(box: QAbstractSpinBox) -> str:
    """The box's value as its line shows it (prefix and suffix included)."""
    if not hasattr(box, "textFromValue"):  # superqt's whole-number box
        return str(box.value())
    return box.prefix() + box.textFromValue(box.value()) + box.suffix()


def _too_many_decimals(box: QAbstractSpinBox, text: str) -> bool:
    """Whether `text` in a box with decimals has more digits after its decimal point than the box shows."""
    if not isinstance(box, QDoubleSpinBox):
        return False
    _, point, decimals = _typed(box, text).partition(box.locale().decimalPoint())
    return bool(point) and decimals.isdigit() and len(decimals) > box.decimals()


def _label(box: QAbstractSpinBox) -> str:
    """"<the box's accessible name, else its row's label>: ", or nothing where the row has no one label."""
    if box.accessibleName():
        return f"{box.accessibleName()}: "
    labels = box.parentWidget().findChildren(QLabel) if box.parentWidget() is not None else []
    return f"{labels[0].text()}: " if len(labels) == 1 else ""


def _say_rejected(box: QAbstractSpinBox, text: str) -> None:
    """A notification that the box cannot take `text` (its row's label, why, and the value it keeps):
    not a number, or outside the box's range."""
    shown = box.textFromValue if hasattr(box, "textFromValue") else str
    typed, kept = _typed(box, text), shown(box.value())
    if typed not in ("-", "+") and not re.fullmatch(r"[-+]?[\d.,]*\d[\d.,]*", typed):  # 1,000,000: a number
        show_warning(f"{_label(box)}{typed!r} is not a number; it stays {kept}" if typed
                     else f"{_label(box)}an empty box is not a number; it stays {kept}")
        return
    show_warning(f"{_label(box)}{shown(box.minimum())} to {shown(box.maximum())} only; {typed!r} not taken, it stays "
                 f"{kept}")


class _CancelWhenClosed(QObject):
    """Event filter on a dock's frame: closed (napari takes the frame out of its dock), the widget's
    job is cancelled; it went on using the CPU and notifying, unseen."""

    def __init__(self, frame: QWidget, cancel) -> None:
        super().__init__(frame)
        self.cancel = cancel

    def eventFilter(self, frame, event) -> bool:
        if event.type() == QEvent.Type.ParentChange and frame.parent() is None:
            self.cancel()
        return False


class _TabbedWhenCrowded(QObject):
    """Event filter on a dock's frame: first shown in a dock napari made for it, where its column
    (the docks in its area, a stack of tabs counting once) would give each stack less than
    ROOMY_DOCK_PX, it is made a tab beside the plugin's last dock there (napari's layer docks keep
    their place); the user can drag it out again, and it stays where it is put. The column's
    stacks then share its height."""

    def __init__(self, frame: QWidget) -> None:
        super().__init__(frame)
        self.placed_in: QDockWidget | None = None

    def eventFilter(self, frame, event) -> bool:
        if event.type() == QEvent.Type.Show:
            dock = frame.parentWidget()
            while dock is not None and not isinstance(dock, QDockWidget):
                dock = dock.parentWidget()
            if dock is not None and dock is not self.placed_in:
                self.placed_in = dock
                timer = QTimer(dock, singleShot=True)  # once napari has placed it; gone with the dock
                timer.timeout.connect(lambda: _tab_when_crowded(dock))
                timer.start(0)
        return False


def _tab_when_crowded(dock: QDockWidget) -> None:
    main = dock.parentWidget()
    if not isinstance(main, QMainWindow) or main.centralWidget() is None or not dock.isVisible():
        return
    area = main.dockWidgetArea(dock)
    column = [d for d in main.findChildren(QDockWidget)
              if d is not dock and d.isVisible() and not d.isFloating() and main.dockWidgetArea(d) == area]
    stacks = {frozenset([d, *main.tabifiedDockWidgets(d)]) for d in column}
    ours = [d for d in column if d.findChild(QWidget, DOCK_FRAME_NAME) is not None]
    vertical = area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
    room = _column_room(main, vertical)
    if ours and room / (len(stacks) + 1) < ROOMY_DOCK_PX:
        main.tabifyDockWidget(ours[-1], dock)
        dock.show()
        dock.raise_()
    else:
        stacks.add(frozenset([dock]))
    timer = QTimer(main, singleShot=True)  # once the tabs have freed the height; gone with the window
    timer.timeout.connect(lambda: _within_screen(main))
    timer.start(0)
    # the stacks share the column: napari gives the dock just added most of it (Predict kept 193 of
    # 680 px under a Filter opened after it, its settings a strip showing one row)
    shown = [next(iter(stack)) for stack in stacks]
    if len(shown) > 1:
        main.resizeDocks(shown, [room // len(shown)] * len(shown),
                         Qt.Orientation.Vertical if vertical else Qt.Orientation.Horizontal)


def _column_room(main: QMainWindow, vertical: bool) -> int:
    """The height (width) a dock column has beside the canvas, px: the canvas's, or what the
    screen leaves it where the window has grown past the screen (a dock napari adds can push the
    window taller than the screen before it is tabbed: 798 px on a 768 px laptop screen)."""
    central = main.centralWidget()
    room = central.height() if vertical else central.width()
    screen = main.screen()
    if screen is not None:
        available = screen.availableGeometry()
        frame = main.frameGeometry()
        room = min(room, (available.height() - (frame.height() - central.height())) if vertical
                   else (available.width() - (frame.width() - central.width())))
    return room


def _within_screen(main: QMainWindow) -> None:
    """A window that a dock added pushed past its screen's edge back within it: as large as the
    screen at most (as far as the docks' least sizes let it), and moved up or left onto it."""
    screen = main.screen()
    if screen is None or main.isMaximized() or main.isFullScreen():
        return
    available, frame = screen.availableGeometry(), main.frameGeometry()
    excess_w, excess_h = frame.width() - available.width(), frame.height() - available.height()
    if excess_w > 0 or excess_h > 0:
        main.resize(main.width() - max(excess_w, 0), main.height() - max(excess_h, 0))
        frame = main.frameGeometry()
    beyond_x, beyond_y = frame.right() - available.right(), frame.bottom() - available.bottom()
    if beyond_x > 0 or beyond_y > 0:
        main.move(max(frame.x() - max(beyond_x, 0), available.x()), max(frame.y() - max(beyond_y, 0), available.y()))


def number_boxes_take_typed_entries(root: QWidget) -> None:
    """Every number box under `root` (itself included) takes what is typed once the entry ends
    (Return, or leaving the box), not at every key ("160" typed as a pixel size went through 1
    and 16 nm, each a new camera); with decimals, takes a typed comma or point as its decimal
    point, and says when it cannot take an entry or a key (_RejectedEntry)."""
    boxes = [root] if isinstance(root, QAbstractSpinBox) else root.findChildren(QAbstractSpinBox)
    for box in boxes:
        if box.findChildren(_RejectedEntry):
            continue
        box.setKeyboardTracking(False)
        box.installEventFilter(_RejectedEntry(box))


class ScrollingDock:
    """Mixin for a top-level magicgui Container made with scrollable=True. napari docks a magicgui
    widget's `native`: here that is a frame around the scroll area, whose own rows live in `body`
    (add to body.layout()); call make_dock() at the end of __init__."""

    @property
    def native(self) -> QWidget:
        """What napari docks: the frame around the scroll area (and its pinned bar) once made."""
        return getattr(self, "dock_frame", None) or self.scroll_area

    def make_dock(self, pinned: tuple = ()) -> None:
        """The frame napari docks: the scroll area, at least MIN_SCROLL_PX tall, and under it a bar
        of the magicgui widgets `pinned` (a run button, its progress and status), in view however
        far the settings above are scrolled (a laptop screen shows only the first sections of a
        long widget). Call before the dock is added."""
        frame = QWidget()
        frame.setObjectName(DOCK_FRAME_NAME)
        frame.installEventFilter(_TabbedWhenCrowded(frame))
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.scroll_area.setMinimumHeight(MIN_SCROLL_PX)
        layout.addWidget(self.scroll_area, 1)
        # a bar of only a button and a status line: the line as wide as the dock, not in a column of labels
        self.pinned_bar = Container(widgets=list(pinned), labels=any(widget.label for widget in pinned))
        layout.addWidget(self.pinned_bar.native)
        self.dock_frame = frame
        number_boxes_take_typed_entries(frame)
        if isinstance(self, JobControls):
            frame.installEventFilter(_CancelWhenClosed(frame, self.cancel))

    @property
    def scroll_area(self) -> QScrollArea:
        """The scroll area around the widget's rows."""
        return self.root_native_widget

    @property
    def body(self) -> QWidget:
        """The widget inside the scroll area."""
        return self.root_native_widget.widget()

    def fit_width_soon(self) -> None:
        """fit_width once the rows are laid out (in their dock; after rows were rebuilt)."""
        if getattr(self, "width_timer", None) is None:
            self.width_timer = QTimer(self.body, singleShot=True, interval=0)
            self.width_timer.timeout.connect(self.fit_width)
        self.width_timer.start()

    def fit_width(self) -> None:
        """As wide as the widest row (call once every row is in), so that it scrolls up and down
        only; should napari's style widen a row later, a horizontal scroll bar shows the rest."""
        self.root_native_widget.setMinimumWidth(self.body.minimumSizeHint().width() + SCROLLBAR_PX)
        self.root_native_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
