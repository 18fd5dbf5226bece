# Two commands work on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build on CPU hosts
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install test test-triton30 demo lint clean sandbox-image

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --no-cache-dir -e ".[dev]"
	touch $@

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The harness tests again under Triton 3.0.0, the release MetaX's Triton fork is built on, in the
# interpreter: every version-dependent path of evaluators/compat.py runs on the API MetaX has, with no
# MetaX hardware. numpy<2 because Triton 3.0's interpreter writes nothing into tensors under numpy 2.
VENV30 ?= .venv-triton30
PY30 := $(VENV30)/bin/python
TRITON30_SPEC := "triton==3.0.0" "numpy<2"
TRITON30_TESTS ?= tests/evaluators tests/tasks/test_seeds.py

# Only Triton 3.0.0 and numpy<2 are installed here; torch and the rest come from the main venv, whose
# site-packages a .pth file adds after this venv's own (so these two shadow the main venv's releases). A
# second copy of torch and its company costs ~1.5 GB, more than some CI machines have left on disk.
$(VENV30)/.installed: $(VENV)/.installed
	rm -rf $(VENV30)
	$(PYTHON) -m venv $(VENV30)
	$(PY30) -m pip install --quiet --no-cache-dir $(TRITON30_SPEC)
	$(PY) -c "import sysconfig; print('import site; site.addsitedir(%r)' % sysconfig.get_paths()['purelib'])" \
		> "$$($(PY30) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/kernelsmith_main_venv.pth"
	$(PY30) -c "import numpy, torch, triton; assert triton.__version__ == '3.0.0', triton.__version__; assert numpy.__version__ < '2', numpy.__version__"
	touch $@

test-triton30: $(VENV30)/.installed
	$(PY30) -m pytest $(TRITON30_TESTS) $(PYTEST_ARGS)

# parameter-only evolution (no LLM, no GPU needed) of a shipped task's seed kernel, in a fresh archive
demo: install
	rm -f runs/demo.db runs/demo.db-wal runs/demo.db-shm
	$(VENV)/bin/kernelsmith evolve level1/13_Softmax --max-evals 8 --db runs/demo.db --out runs/demo_best.py

# the docker sandbox's local image: FROM scratch, nothing pulled; the host's Python is bind-mounted into it
sandbox-image: install
	$(PY) -m evaluators.sandbox_docker build-image

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(VENV30) build dist *.egg-info .pytest_cache .ruff_cache
