# SPDX-License-Identifier: GPL-2.0
#
# tesseract: out-of-tree build, tests and tools.
#
#   make                  build tesseract.ko for the running kernel
#   make KVER=<version>   ... for an installed Debian kernel
#   make KDIR=<dir>       ... against any prepared kernel tree
#   make check            lint + build and test on the 6.1 and 6.12 matrix
#   make soak             the crash-replay tests with twenty times the points,
#                         flatten_scale with a million references, the
#                         fuzzer for SOAK_FUZZ_SECONDS (default 600), the
#                         nested guests and the remote store's long faults
#   make demo             boot the 6.1 test kernel and show the module
#                         (VM=1: and a real guest, in the 6.12 kernel)
#   make lint             checkpatch --strict and sparse on our sources
#   make bench-swap       swap throughput: /dev/tsswap0 against plain swap
#                         and dm-linear over it (stacking alone)
#   make bench-vhost      fio through /dev/vhost-blk against native I/O
#   make bench-dp         double paging: a guest's page-out, reconciliation
#                         off against on, HDD- and SSD-like (tools/dpbench),
#                         then the end-to-end workload (bench-e2e) in both
#   make bench-e2e        Tesseract's experiment end to end alone: a guest
#                         that pages on a host that swaps it (dpbench/e2e.c)
#   make bench-mrc        miss-ratio curves: predicted against measured
#                         swap-ins of a Zipf workload, and their overhead
#   make bench-locality   sequential reads of a reconciled range before and
#                         after compaction and cleaning (dpbench -l)
#   make bench-mapper     the swap mapper: a guest's page cache swapped out
#                         and in, mapper off against on, HDD- and SSD-like
#                         (tools/dpbench/mapper.c)
#   make bench-remote     swap and a guest's page-out with the store local
#                         against NVMe/TCP and NBD (tools/bench/remote.sh)
#   make debug-kernel     build the 6.12 debug test kernel (KASAN, lockdep,
#                         KFENCE, kmemleak, ...) into build/debug-kernel
#   make check-debug      the selftests in the debug kernel, failing on any
#                         report of it (FUZZ_SECONDS=N: time for a fuzzer);
#                         required for every change to kmod/, not run by CI

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# The kernel series (6.1, 6.12) picks the linux-source tarball.
SERIES := $(shell echo $(KVER) | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
BUILD := $(TOP)/build/$(KVER)
KSRC := $(TOP)/build/ksrc-$(SERIES)

KSRC_FILES := drivers/vhost/vhost.h \
	tools/testing/selftests/kselftest.h \
	tools/testing/selftests/kselftest_harness.h \
	scripts/checkpatch.pl scripts/spelling.txt \
	scripts/const_structs.checkpatch

MOD_SRCS := $(wildcard $(TOP)/kmod/*.[ch]) $(TOP)/Kbuild \
	$(wildcard $(TOP)/include/uapi/linux/*.h)

.PHONY: all modules selftests tools clean deps check demo lint ksrc soak \
	debug-kernel check-debug

all: modules selftests

ksrc: $(KSRC)/.stamp
$(KSRC)/.stamp:
	@$(TOP)/tools/extract-ksrc.sh $(KVER) $(KSRC) $(KSRC_FILES)
	@touch $@

# A symlink tree per kernel keeps objects of different kernels apart.
$(BUILD)/.tree: $(MOD_SRCS) | $(KSRC)/.stamp
	@rm -rf $(BUILD)/kmod
	@mkdir -p $(BUILD)/kmod
	@ln -sfn $(TOP)/Kbuild $(BUILD)/Kbuild
	@ln -sfn $(TOP)/include $(BUILD)/include
	@ln -sfn $(KSRC)/drivers/vhost $(BUILD)/ksrc
	@ln -sf $(TOP)/kmod/*.[ch] $(BUILD)/kmod/
	@touch $@

modules: $(BUILD)/.tree
	$(MAKE) -C $(KDIR) M=$(BUILD) modules

selftests: $(KSRC)/.stamp
	$(MAKE) -C $(TOP)/selftests OUT=$(BUILD)/selftests KSRC=$(KSRC)

tools:
	$(MAKE) -C $(TOP)/tools OUT=$(TOP)/build/tools

deps:
	@$(TOP)/tools/deps.sh

# The fuzzer runs one fixed seed in make check (FUZZ_SEED=0: one of its own
# each run): CI must not depend on the draw (Documentation/testing.rst,
# "The fuzzer").
FUZZ_SEED ?= 0x6b0f733e3863aaeb

check: deps
	@FUZZ_SEED=$(FUZZ_SEED) $(TOP)/tools/run-tests

# VM=1: the demo ends with a real guest (QEMU inside the 6.12 test kernel),
# reconciliation off and on; a few minutes more.
demo: deps
	@TS_DEMO_VM=$(if $(VM),1,0) $(TOP)/tools/run-tests --demo \
		$(if $(VM),-k $(lastword $(shell $(TOP)/tools/test-kernels)))

# Benchmarks: the plot is written before the result lines, which stay last
# (bench-dp has one per profile and phase, then its summary).
bench-%: deps
	@mkdir -p $(TOP)/build/bench
	@$(TOP)/tools/run-tests --bench $* | tee $(TOP)/build/bench-$*.log | \
		grep -v '^$*bench '
	@/usr/bin/python3 $(TOP)/tools/bench/plot.py $* \
		$(TOP)/build/bench-$*.log $(TOP)/build/bench/$*.png
	@grep '^$*bench ' $(TOP)/build/bench-$*.log | uniq

# The crash-replay tests with twenty times the crash points, a flatten of a
# million references, the fuzzer for a while, the nested guest under QEMU's
# own command line and the remote store's longer faults, on both kernels.
SOAK_FUZZ_SECONDS ?= 600

soak: deps
	@$(TOP)/tools/run-tests --soak -t crash_replay -t crash_replay_locality \
		-t flatten_scale -t fuzz_vhost_blk -t vhost_user_blk \
		-t remote_store --fuzz-seconds $(SOAK_FUZZ_SECONDS)

lint: deps
	@$(TOP)/tools/lint.sh

# The debug test kernel: rebuilt only when its config fragment or the
# linux-source-6.12 tarball changed (tools/debug-kernel/build.sh).
DEBUG_KERNEL := $(TOP)/build/debug-kernel
FUZZ_SECONDS ?= 0
# The debug kernel's suite in this many VMs at once (run-tests --vms): in
# one, it takes over four hours on the 2-core machine.
DEBUG_VMS ?= 3

debug-kernel:
	@$(TOP)/tools/deps.sh --debug-kernel
	@$(TOP)/tools/debug-kernel/build.sh $(DEBUG_KERNEL)

check-debug: debug-kernel
	@$(TOP)/tools/run-tests --debug-kernel $(DEBUG_KERNEL) \
		--fuzz-seconds $(FUZZ_SECONDS) --vms $(DEBUG_VMS)

clean:
	rm -rf $(TOP)/build
