# carpfarm: the commands users and CI run. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.carpfarm-installed
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export PATH := $(CURDIR)/$(BIN):$(PATH)

# This controller's Debian release (bookworm, trixie), from /etc/os-release.
DEB_RELEASE := $(shell . /etc/os-release 2>/dev/null && echo $${VERSION_CODENAME:-unknown})
# Debian packages: squid and haproxy for the agreement tests (CARP, HAProxy's consistent hash); podman and friends for the lab. The same names
# exist on Debian 12 and 13 (checked with apt-cache policy on both). runc stays explicit on 13 too:
# podman 5 there depends on "crun | runc" and crun fails on hybrid-cgroup kernels (lab/containers.conf).
# openssh-client and systemd: the status test's unreachable hosts, the unit check (systemd-analyze).
DEB_PACKAGES_bookworm := squid haproxy podman runc netavark aardvark-dns debootstrap iptables nftables python3-venv openssh-client systemd
DEB_PACKAGES_trixie := $(DEB_PACKAGES_bookworm)
DEB_PACKAGES ?= $(or $(DEB_PACKAGES_$(DEB_RELEASE)),$(DEB_PACKAGES_bookworm))
# The `ansible` release on PyPI whose bundled collections we use (no Galaxy needed).
ANSIBLE_BUNDLE ?= 12.3.0
COLLECTIONS := containers.podman ansible.posix
COLLECTIONS_STAMP := collections/ansible_collections/.carpfarm-$(ANSIBLE_BUNDLE)
LAB_INVENTORY := inventory/lab
SCENARIOS ?= default nftables haproxy failover wccp

.PHONY: help setup deps collections collection image squid-roots wccp-squid lint roles-interface test test-unit test-molecule lab lab-up lab-down bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install the Debian packages the tests use (apt, as root)
	@case "$(DEB_RELEASE)" in bookworm|trixie) ;; *) echo "note: this controller is '$(DEB_RELEASE)'; carpfarm's controller is tested on Debian 12 (bookworm) and its package list also written for 13 (trixie)" >&2;; esac
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml | deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(COLLECTIONS_STAMP): | $(STAMP)
	mkdir -p .cache collections
	$(BIN)/python -m pip download -q --no-deps -d .cache 'ansible==$(ANSIBLE_BUNDLE)'
	$(BIN)/python lab/install-collections.py .cache/ansible-$(ANSIBLE_BUNDLE)-py3-none-any.whl collections $(COLLECTIONS)
	rm -f collections/ansible_collections/.carpfarm-*
	touch $@

setup: deps $(STAMP) $(COLLECTIONS_STAMP) ## create .venv with carpfarm, its dev tools and collections (idempotent)

collections: $(COLLECTIONS_STAMP) ## install containers.podman and ansible.posix without Galaxy

# The Ansible collection carpfarm.farm, for controllers without this checkout: the roles, the playbooks
# (site.yml as carpfarm.farm.site), the filters and the carpfarm package they import (python/carpfarm),
# assembled in build/collection/ by lab/build-collection.py, then ansible-galaxy collection build.
collection: $(STAMP) ## build the carpfarm.farm collection: build/collection/carpfarm-farm-<version>.tar.gz
	$(BIN)/python lab/build-collection.py

image: deps ## build the lab's base images, one per release in CARPFARM_LAB_RELEASES (default "bookworm trixie"); skipped when up to date
	bash lab/build-image.sh

lab-up: setup image ## create the lab containers and network (inventory/lab)
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab-up.yml

bench: setup image ## measure the farm on the lab, about 20 min (bench/results/<date>.json, .md, .png); BENCH_ARGS=--no-fresh keeps the lab
	@dpkg-query -W -f='$${Status}' linux-perf 2>/dev/null | grep -q 'install ok installed' || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends linux-perf; }
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lab-down: setup ## remove the lab containers and network
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab-down.yml

# The farm is built as an operator builds theirs: the README's quick start as written (a virtualenv
# with ansible-core, the collection installed, an inventory repository in .cache/lab/home/farm), then the
# lab's inventory from that repository, both over SSH as deploy with sudo (docs/lab.md).
lab: lab-up ## setup, image, lab-up, then the README's quick start and site over SSH, verify.yml, and a request to try
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab-prepare.yml
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab-quickstart.yml
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab-converge.yml
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/verify.yml
	@$(BIN)/carpfarm plan $(LAB_INVENTORY) --vcpus $$(nproc)
	@echo
	@echo "The lab is up: balancer -> CARP Squids on carp1 -> Squid instances on cache1/cache2 -> origin."
	@echo "Send a request through all three layers from the client (twice: MISS, then HIT from one backend):"
	@echo "  CONTAINERS_CONF=lab/containers.conf podman exec carpfarm-client \\"
	@echo "    curl -s -o /dev/null -D - --interface 198.18.0.130 -x http://198.18.0.10:3128 http://198.18.0.50/obj/hello"
	@echo "Ask carpfarm which backend that URL lives on:"
	@echo "  .venv/bin/carpfarm route inventory/lab http://198.18.0.50/obj/hello"
	@echo "Remove the lab: make lab-down"

lint: setup ## ruff, mypy, the package's layer contract (lint-imports), yamllint, ansible-lint (production profile)
	$(BIN)/ruff check src tests plugins lab playbooks/files roles/*/files molecule/resources/files bench
	$(BIN)/ruff format --check src tests plugins lab playbooks/files roles/*/files molecule/resources/files bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

# Each role's defaults/main.yml, meta/argument_specs.yml and README variable tables are written from the
# declarations in src/carpfarm/variables/; tests/roles/test_roles.py fails while one differs (--check).
roles-interface: setup ## rewrite the roles' defaults, argument_specs and README variable tables from src/carpfarm/variables/
	$(BIN)/python -m carpfarm.variables.roledocs

# The CARP agreement test runs Debian 12's squid 5.7 and Debian 13's 6.13: the host's own, and the
# other from a debootstrapped root.
SQUID_ROOT_SUITES ?= $(filter-out $(DEB_RELEASE),bookworm trixie)
squid-roots: deps ## a root with the other Debian release's squid (5.7 or 6.13) for the CARP agreement test (cached by recipe hash)
	for suite in $(SQUID_ROOT_SUITES); do bash lab/build-squid-root.sh $$suite || exit 1; done

test-unit: setup squid-roots ## pytest: library, CLI, filter plugin, roles' interfaces, real-Squid CARP agreement (5.7 and 6.13)
	$(BIN)/pytest

# The Squid the wccp scenario's boxes run: Debian's squid source of the lab's release with the two
# upstream WCCPv2 parser corrections (lab/build-wccp-squid.sh; 754 s the first time on 2 cores, beside
# the first scenarios, then cached on the machine by the hash of its inputs, in
# ~/.cache/carpfarm/wccp-squid). The wccp scenario's prepare builds it, or waits for make test's.
WCCP_SQUID_SUITE ?= bookworm
wccp-squid: image ## build the corrected Squid for the WCCP lab (cached by recipe hash)
	bash lab/build-wccp-squid.sh $(WCCP_SQUID_SUITE)

# Each scenario's output is also kept in .cache/molecule-<scenario>.log; when one fails, the failed
# tasks and their messages are printed last (lab/failure-summary.py), where a short report still shows them.
test-molecule: setup image ## molecule test for each scenario in SCENARIOS
	mkdir -p .cache
	cd $(CURDIR) && for s in $(SCENARIOS); do \
	  $(BIN)/molecule test -s $$s 2>&1 | tee .cache/molecule-$$s.log; rc=$${PIPESTATUS[0]}; \
	  if [ $$rc -ne 0 ]; then $(BIN)/python lab/failure-summary.py .cache/molecule-$$s.log --scenario $$s; exit $$rc; fi; \
	done

# The lab's images (debootstrap: network and disk) build beside lint and pytest (CPU); output stays per target.
# Then the corrected Squid compiles in the background while the first scenarios run, in a cgroup of CPU
# weight 2 beside the lab's (1024) and the controller's: it takes only the CPU they leave idle, so their
# timing checks keep what they need. The wccp scenario, last, waits for it (the build's lock).
test: ## everything: lint, unit tests and the lab's images side by side, then molecule on the lab
	$(MAKE) --no-print-directory -j2 --output-sync=target image lint test-unit
	$(if $(filter wccp,$(SCENARIOS)),mkdir -p .cache && CARPFARM_CPU_SHARES=2 nohup nice -n 19 bash lab/build-wccp-squid.sh $(WCCP_SQUID_SUITE) > .cache/wccp-squid-build.log 2>&1 &)
	$(MAKE) --no-print-directory test-molecule

clean: ## remove the venv, collections and caches
	rm -rf $(VENV) .cache collections/ansible_collections .pytest_cache .mypy_cache .ruff_cache .hypothesis src/*.egg-info
