# The one place that says how jobq is built: the README, .ci/run, the tests
# and the benchmarks all go through these targets.

# Build tags of the Podman v5 bindings (remote client only, no C libraries).
TAGS    := remote exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_openpgp
BINDIR  ?= bin
GO      ?= go
export CGO_ENABLED := 0
GOFLAGS_BUILD := -tags "$(TAGS)" -trimpath -ldflags "-s -w"

# The GWS image with jobq (Containerfile); BASE is the GWS image to derive.
BASE    ?= docker.io/mgoral/gws:0.4.1
IMAGE   ?= localhost/jobq-gws:latest

.PHONY: build build-faultinject image test check reliability unit clean

# jobq (hook and ssh commands, no Podman code), jobq-worker (the worker),
# jobq-web (the web view) and jobq-env (the entrypoint of a container job
# given a secret as a variable: found next to jobq-worker).
build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BINDIR)/ ./cmd/jobq ./cmd/jobq-worker ./cmd/jobq-web ./cmd/jobq-env

# The worker with fault injection (internal/faults: JOBQ_CRASH_AT), for the
# reliability suite.
build-faultinject:
	$(GO) build -tags "$(TAGS) faultinject" -trimpath -o $(BINDIR)/jobq-worker-faultinject ./cmd/jobq-worker

image: build
	podman build --build-arg BASE=$(BASE) -t $(IMAGE) -f Containerfile .

# Static checks: formatting, vet, staticcheck.
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags "$(TAGS)" ./...

# Every test: unit tests, fuzz corpora, and the end-to-end tests against a
# real gitolite, sshd and Podman (as root; .ci/run installs what they need).
# faultinject: the crash tests kill their children at the store's and the
# worker's fault points.
test: check
	$(GO) test -tags "$(TAGS) faultinject" -count=1 -timeout 40m ./...

# The reliability suite alone, longer: ROUNDS kills per crash phase; the
# figures go to bench/out/reliability.md (RELIABILITY.md reports them).
ROUNDS ?= 100
reliability:
	mkdir -p bench/out && rm -f bench/out/reliability.md
	CI=true JOBQ_RELIABILITY_ROUNDS=$(ROUNDS) JOBQ_RELIABILITY_REPORT=$(CURDIR)/bench/out/reliability.md \
		$(GO) test -tags "$(TAGS)" -count=1 -timeout 60m ./e2e/reliability
	cat bench/out/reliability.md

unit:
	$(GO) test -tags "$(TAGS) faultinject" -count=1 -short ./queue/... ./push/... ./notify/... ./worker/... ./runner/... ./cmd/... ./internal/termsafe/... ./web/...

clean:
	rm -rf $(BINDIR)
