# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   train the paper's configuration 1 on the embedded data, extract, report
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cnn2logic-installed

.PHONY: demo test bench env clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cnn2logic demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The benchmarks print JSON; the README quotes their latest figures.  Run them on an
# otherwise idle machine (2 cores are shared by everything).
bench: $(STAMP)
	$(BIN)/python bench/paper_table.py --data ../shared/data/mnist
	$(BIN)/python bench/extract_scaling.py
	$(BIN)/python bench/queries.py
	$(BIN)/python bench/visualize.py

clean:
	rm -rf runs .pytest_cache
