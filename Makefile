# Silo developer commands. `make help` lists them; `make test` is what CI (.ci/run) runs.

PYTHON ?= python3
PROTO_OUT := python/silo/_proto
PROTO_FILES := proto/silo/v1/silo.proto proto/silo/admin/v1/admin.proto
# Generated code imports as `from silo._proto.silo.v1 import EnqueueRequest, SiloStub, ...`
# and `from silo._proto.silo.admin.v1 import AdminStub, Stats, ...`.
PROTO_FLAGS := --python_betterproto2_out=client_generation=async:$(PROTO_OUT)

.DEFAULT_GOAL := help
.PHONY: help install develop proto lint fmt test serve wheel

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

install: ## pip install -e '.[test]' (builds silo._native in release mode)
	$(PYTHON) -m pip install -e '.[test]'

develop: ## rebuild only silo._native after a Rust change (release)
	maturin develop --release

proto: ## regenerate every generated protobuf module: python/silo/_proto and python/silo/bench/_pb
	rm -rf $(PROTO_OUT)
	mkdir -p $(PROTO_OUT)
	$(PYTHON) -m grpc_tools.protoc -I proto $(PROTO_FLAGS) $(PROTO_FILES)
	PYTHON=$(PYTHON) bash python/silo/bench/regen.sh

lint: ## cargo fmt/clippy, ruff, mypy (strict on python/silo), stubtest of silo._native
	cargo fmt --check
	cargo clippy --features python --all-targets -- -D warnings
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest silo._native

fmt: ## format Rust and Python in place
	cargo fmt
	ruff format .

test: ## Rust unit tests (release), then the Python suite; collecting no test is a failure
	cargo test --lib --release
	$(PYTHON) -m pytest -q || { rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
		exit $$rc; }

serve: ## run the broker on ./silo-data at 127.0.0.1:7070
	$(PYTHON) -m silo serve

wheel: ## build the abi3 wheel (native module stripped) into dist/: pip install dist/silo-*.whl
	rm -rf dist
	maturin build --release --strip --out dist
	@ls dist/*.whl
