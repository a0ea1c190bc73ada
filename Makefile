# The one test command (README.md): installs what the tests need, then runs
# vet, govulncheck, every test under the race detector, the zero-allocation
# tests (which only run without -race), and each fuzz target briefly.
export GOTOOLCHAIN := go1.26.11

.PHONY: test deps vet vulncheck build image fuzz

test: deps vet vulncheck
	go test -race -count=1 -timeout 15m ./...
	go test -count=1 -run 'Alloc' ./...
	FUZZCACHE=fresh ./scripts/fuzz.sh $(FUZZTIME_SHORT)

# govulncheck against the Go vulnerability database, which it obtains
# through the module proxy (scripts/vulncheck.sh); fails on a vulnerable
# symbol that graftlb's code reaches.
vulncheck:
	./scripts/vulncheck.sh

deps:
	./scripts/deps.sh

vet:
	go vet ./...

build:
	CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o bin/graftlb ./cmd/graftlb

# The container image (deploy/docker/Dockerfile), FROM scratch: the build
# context is a directory holding only the static binary.
IMAGE ?= graftlb:latest
image:
	mkdir -p bin/image
	CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o bin/image/graftlb ./cmd/graftlb
	docker build -q -f deploy/docker/Dockerfile -t $(IMAGE) bin/image

# Every fuzz target (scripts/fuzz.sh finds them), FUZZTIME each; make test
# runs each for FUZZTIME_SHORT from its seeds (13 targets: about 80 s in
# all).
FUZZTIME ?= 10m
FUZZTIME_SHORT ?= 4s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)
