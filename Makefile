# Entry points: `make demo`, `make test`, `make napari`, `make bench`. They create .venv if missing and install
# the CPU torch pin first (a bare `torch` would pull a multi-GB CUDA build), then the package.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What the napari tests need from Debian: a virtual X server, Mesa OpenGL, Qt's xcb libraries.
DEBIAN_PACKAGES := make xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 \
	libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libdbus-1-3 libfontconfig1

.PHONY: setup system-deps demo test napari screenshots bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

system-deps:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(DEBIAN_PACKAGES) >/dev/null

demo: $(STAMP)
	$(BIN)/var-emitter demo --out demo_output

# Qt/OpenGL tests need a display: without one, run under Xvfb (installed here if missing), on a
# laptop's 1366x768 screen (the docks must fit one).
test: $(STAMP)
	@if [ -z "$$DISPLAY" ] && ! command -v xvfb-run >/dev/null; then $(MAKE) system-deps; fi
	if [ -n "$$DISPLAY" ]; then $(BIN)/python -m pytest; \
	else xvfb-run -a -s "-screen 0 1366x768x24" $(BIN)/python -m pytest; fi

# napari with the plugin's widgets docked and the sample stack loaded (needs a display).
napari: $(STAMP)
	$(BIN)/python scripts/open_napari.py

# docs/images/*.png for docs/user-guide.md and docs/analysis.md, from a real viewer (under Xvfb
# without a display).
screenshots: $(STAMP)
	for script in user_guide_screenshots analysis_figures; do \
	  if [ -n "$$DISPLAY" ]; then $(BIN)/python scripts/$$script.py; \
	  else xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python scripts/$$script.py; fi || exit 1; done

# Side-by-side benchmark against SMAPpy and Picasso (docs/benchmarks.md): their own environment,
# since Picasso pins pandas < 3 and SMAPpy brings PySide6 beside napari's PyQt6.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/peers.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo_output
