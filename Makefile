# dsmexec — build, demo, test, bench.
#   make demo    build everything, run the double_touch example on 3 local ranks
#   make test    vet + unit/integration tests (+ cluster, Hydra and Slurm tests when root and installed)
#   make bench   benchmarks printed as ratios against baselines measured in the same run
#   make fuzz    the fuzz targets, each for FUZZTIME
#   make test-scale  the scale jobs: 256 ranks on one host, 64 over 8 namespace hosts (root)

GO       ?= go
BIN      := bin
EXAMPLES := $(notdir $(patsubst %/,%,$(wildcard examples/*/)))
FUZZTIME ?= 20s

.PHONY: all build demo test test-go test-system test-scale bench fuzz clean

all: build

# Static binaries (CGO_ENABLED=0): no dynamic loader and libc start-up in
# mpirun, in every rank and in every page server (a re-execution of the
# rank's binary): about a fifth of the CPU of launching 8 ranks here
# (docs/PERFORMANCE.md), and an mpirun that runs on any Linux host it is
# copied to whatever its libc.
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/mpirun ./mpirun
	@for e in $(EXAMPLES); do echo "CGO_ENABLED=0 $(GO) build -o $(BIN)/$$e ./examples/$$e"; CGO_ENABLED=0 $(GO) build -o $(BIN)/$$e ./examples/$$e || exit 1; done

demo: build
	$(BIN)/mpirun -np 3 $(BIN)/double_touch

test: build test-go test-system

test-go:
	$(GO) vet ./...
	$(GO) test -race -timeout 10m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime 10s ./internal/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 5s ./internal/hostfile
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime 5s ./internal/units

# Tests that need root, network namespaces, sshd, MPICH or Slurm. Each
# script says why it skips when something is missing.
test-system: build
	bash scripts/test-system.sh

# The scale jobs of issue 13: mpirun -np 256 hello on this host, and 64
# ranks over 8 namespace hosts with the counter example exact (root;
# make test runs it through test-system).
test-scale: build
	bash scripts/test-scale.sh all

bench: build
	bash scripts/bench.sh

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./internal/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/hostfile
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime $(FUZZTIME) ./internal/units

clean:
	rm -rf $(BIN)
