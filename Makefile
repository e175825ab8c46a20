# tcpstated: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
PREFIX ?= /usr/local
DESTDIR ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/tcpstated/tcpstated/internal/buildinfo.version=$(VERSION) -X github.com/tcpstated/tcpstated/internal/buildinfo.commit=$(COMMIT)
BPF_OUT := internal/events/tcpstated_x86_bpfel.go internal/events/tcpstated_x86_bpfel.o

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## compile bpf/ with bpf2go (needs clang, libbpf-dev)
	$(GO) generate ./internal/events/

.PHONY: check-generate
check-generate: generate ## fail if the committed BPF object differs from bpf/
	@git diff --exit-code -- $(BPF_OUT) || { echo "bpf2go output is stale: run 'make generate' and commit it"; exit 1; }

.PHONY: vmlinux
vmlinux: ## regenerate bpf/headers/vmlinux.h from this kernel's BTF (then make generate)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/headers/vmlinux.h

.PHONY: build
build: ## build bin/tcpstated (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tcpstated ./cmd/tcpstated

.PHONY: run
run: install-bin ## install tcpstated on PATH (PREFIX/bin), then trace every TCP transition on this host (as root)
	$(DESTDIR)$(PREFIX)/bin/tcpstated run

.PHONY: install-bin
install-bin: build ## install bin/tcpstated alone into PREFIX/bin (sockets, top and check are then on PATH)
	install -D -m 0755 bin/tcpstated $(DESTDIR)$(PREFIX)/bin/tcpstated

.PHONY: test
test: build ## unit and kernel tests, one package at a time: kernel tests trace the whole host (root; CI=true makes a skip a failure)
	$(GO) vet ./...
	TCPSTATED_BIN=$(CURDIR)/bin/tcpstated $(GO) test -count=1 -race -p 1 -timeout 30m ./...

.PHONY: test-unit
test-unit: ## tests that need no privileges
	$(GO) test -count=1 ./internal/... ./cmd/...

.PHONY: fuzz
fuzz: ## fuzz the record decoder for a minute
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=60s ./internal/events/

.PHONY: lint
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: clean
clean: ## remove build output
	rm -rf bin

.PHONY: test-kernels
test-kernels: ## run the kernel tests inside Debian's 6.1 and 6.12 kernels (qemu TCG; docs/kernels.md)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tcpstated ./cmd/tcpstated
	CGO_ENABLED=0 $(GO) test -c -o bin/kerneltest ./test/e2e
	CGO_ENABLED=0 $(GO) test -c -o bin/events.test ./internal/events
	CGO_ENABLED=0 $(GO) test -c -o bin/daemon.test ./internal/daemon
	test/kernels/run.sh --test-bin bin/kerneltest --also-test bin/events.test --also-test bin/daemon.test \
		--daemon-bin bin/tcpstated \
		--kernel $(or $(KERNELS),all) $(if $(KERNEL_TEST_ARGS),-- $(KERNEL_TEST_ARGS))

UNITDIR ?= $(PREFIX)/lib/systemd/system

.PHONY: install
install: build ## install bin/tcpstated and its systemd unit (DESTDIR, PREFIX, UNITDIR)
	install -D -m 0755 bin/tcpstated $(DESTDIR)$(PREFIX)/bin/tcpstated
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|^ExecStart=/usr/local/bin/tcpstated |ExecStart=$(PREFIX)/bin/tcpstated |' \
		packaging/tcpstated.service > $(DESTDIR)$(UNITDIR)/tcpstated.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tcpstated.service
	install -D -m 0644 packaging/tcpstated.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/tcpstated.conf
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then systemd-sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/tcpstated.conf; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start with: systemctl enable --now tcpstated"

.PHONY: bench
bench: build ## tracing cost: churn without/with tcpstated and bpftrace, 100k live sockets (root, ~6 min; rewrites docs/performance.md)
	$(GO) run ./bench --daemon bin/tcpstated --out docs/performance.md $(BENCH_FLAGS)

.PHONY: bench-soak
bench-soak: build ## one hour of paced churn (1000 conn/s) under tcpstated: memory and tables must stay flat, nothing lost (root; rewrites its section of docs/performance.md)
	$(GO) run ./bench --daemon bin/tcpstated --out docs/performance.md --soak 60m $(BENCH_FLAGS)

.PHONY: bench-quiet
bench-quiet: build ## tcpstated on an idle host, then TCP timers without state changes (ping-pong, 3 pairs) (root, ~2 min; rewrites its section of docs/performance.md)
	$(GO) run ./bench --daemon bin/tcpstated --out docs/performance.md --quiet --pairs 3 $(BENCH_FLAGS)
