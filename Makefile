# liblstm - one Makefile for the library, the examples, the benchmarks and
# the tests.
#
#   make            lib/liblstm.a, examples/news_classifier, bench/lstm_step
#   make test       installs missing Debian packages (as root or with sudo),
#                   builds, runs every Check suite
#   make asan       the same suites under AddressSanitizer + UBSan
#   make valgrind   the same suites under valgrind's memcheck
#   make run        the notebook in C: data (downloaded when absent), stats,
#                   training, test report; make run DATA=FILE for another file
#   make data       downloads and checks data/data.csv
#   make bench      LSTM throughput (bench/lstm_step)
#   make bench-compare  the same against oneDNN and PyTorch, side by side
#                   (ROUNDS=N: N alternations, each implementation's best)
#   make fuzz       libFuzzer harnesses of the loaders, FUZZ_SECONDS each
#   make install PREFIX=/usr/local   (make uninstall PREFIX=... removes it)
#   make WERROR=1 ...  warnings are errors (CI)
#   make MPI=1 ...  built with mpicc, with data-parallel training over MPI
#                   (lstm_mpi.h; news_classifier under mpirun)
#   make bench-mpi  epoch time of 1 process x 2 threads against 2 x 1

CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
BUILD   ?= build/release
ARCHIVE ?= lib/liblstm.a

# Debian packages the build and the tests need.
DEBS = gcc libc6-dev make libopenblas-dev check pkg-config zlib1g-dev valgrind \
       curl ca-certificates libopenmpi-dev openmpi-bin

WARN = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wdouble-promotion
ifeq ($(WERROR),1)
WARN += -Werror
endif
BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   = $(shell pkg-config --libs openblas 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
ALL_CFLAGS = $(CFLAGS) $(WARN) -fopenmp -fno-math-errno -MMD -MP -fPIC \
             -Iinclude -Ilib $(BLAS_CFLAGS)
LIBS = $(ARCHIVE) $(BLAS_LIBS) -fopenmp -lz -lm

LIB_SRC = $(filter-out lib/mpi/%,$(wildcard lib/*/*.c)) $(wildcard kernels/*.c)
# MPI=1: its own build tree (build/mpi: objects, liblstm.a, examples/)
ifeq ($(MPI),1)
CC = mpicc
WARN += -DLSTM_MPI=1
LIB_SRC += lib/mpi/mpi.c
BUILD = build/mpi
ARCHIVE = build/mpi/liblstm.a
EXDIR = build/mpi/examples
endif
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/*.c)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(BUILD)/tests/run_tests

.PHONY: all test check-run check-link mpi-cli bench-mpi uninstall asan valgrind deps checkdeps checkdeps-test install run data bench bench-compare fuzz clean liblstm.pc

# Example programs; sanitizer and valgrind builds keep theirs under BUILD.
EXDIR ?= examples
EXAMPLES = $(EXDIR)/lstm_example $(EXDIR)/news_classifier $(EXDIR)/char_lm

BENCHES = bench/lstm_step

# The version, from include/lstm.h; the shared library's SONAME carries the
# major number, and while that is 0 the minor as well: a 0.x release may
# change the ABI (a field added to a struct the caller allocates), so a
# program built against one is never loaded against another.
VERSION := $(shell sed -n 's/^\#define LSTM_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' \
             include/lstm.h | paste -sd.)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
SOVER := $(if $(filter 0,$(MAJOR)),$(MAJOR).$(word 2,$(subst ., ,$(VERSION))),$(MAJOR))
SHARED = lib/liblstm.so.$(VERSION)

ifeq ($(MPI),1)
all: $(ARCHIVE) $(EXAMPLES)
else
all: $(ARCHIVE) $(SHARED) $(EXAMPLES) $(BENCHES)
endif

bench/%: bench/%.c $(ARCHIVE)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBS) $(LDFLAGS)

bench: $(BENCHES)
	bench/lstm_step

# The peers of bench-compare: oneDNN (C) and PyTorch (Python).
BENCH_DEBS = libdnnl-dev python3-torch
ROUNDS ?= 1

bench/dnnl_lstm: bench/dnnl_lstm.c
	$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -fopenmp $< -o $@ -ldnnl $(LDFLAGS)

bench-mpi:
	@$(MAKE) --no-print-directory DEBS="libopenmpi-dev openmpi-bin" deps
	@$(MAKE) --no-print-directory mpi-cli
	bench/mpi_epoch.sh $(or $(ROWS),2000) $(ROUNDS)

bench-compare: $(BENCHES)
	@$(MAKE) --no-print-directory DEBS="$(BENCH_DEBS)" deps
	@$(MAKE) --no-print-directory bench/dnnl_lstm
	bench/compare.sh 2 5 "4 12 32 64" $(ROUNDS)

$(EXDIR)/%: examples/%.c $(ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBS) $(LDFLAGS)

$(BUILD)/%.o: %.c | checkdeps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c | checkdeps checkdeps-test
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

# The tuned recurrence fuses multiply-adds, and lets the vectoriser compute
# both sides of vmath.h's selects (-fno-trapping-math: the library never
# reads floating-point exception flags). No fast-math: NaNs, infinities,
# signed zeros and the order of operations stay IEEE.
# KERNEL_CFLAGS: more flags for these two only (make fuzz's build).
$(BUILD)/kernels/lstm_cell.o $(BUILD)/kernels/gru_cell.o: ALL_CFLAGS += -ffp-contract=fast -fno-trapping-math $(KERNEL_CFLAGS)

$(ARCHIVE): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,liblstm.so.$(SOVER) $(LDFLAGS) $^ -o $@ \
	    $(BLAS_LIBS) -fopenmp -lz -lm
	ln -sf liblstm.so.$(VERSION) lib/liblstm.so.$(SOVER)
	ln -sf liblstm.so.$(SOVER) lib/liblstm.so

$(TEST_BIN): $(TEST_OBJ) $(ARCHIVE)
	$(CC) $(CFLAGS) $(TEST_OBJ) -o $@ $(LIBS) $(CHECK_LIBS) $(LDFLAGS)

# The suites find their fixtures relative to the top folder.
check-run: $(TEST_BIN) $(EXAMPLES)
	$(EXDIR)/lstm_example >/dev/null
	LSTM_CLI=$(EXDIR)/news_classifier LSTM_CHAR_LM=$(EXDIR)/char_lm \
	    LSTM_MPI_CLI=$(LSTM_MPI_CLI) $(TEST_BIN)

# news_classifier built with MPI=1, for the MPI tests of `make test` (which
# say they are skipped when Open MPI is not installed).
MPI_CLI = build/mpi/examples/news_classifier
mpi-cli:
	@if command -v mpicc >/dev/null && command -v mpirun >/dev/null; then \
	  $(MAKE) --no-print-directory MPI=1 $(MPI_CLI); \
	fi

test: deps
	@$(MAKE) --no-print-directory mpi-cli
	@$(MAKE) --no-print-directory check-run \
	    LSTM_MPI_CLI=$$([ -x $(MPI_CLI) ] && echo $(MPI_CLI))
	@$(MAKE) --no-print-directory check-link

# The README's two ways to link a program: its plain line against the
# archive, and pkg-config after make install (shared and --static).
check-link: $(ARCHIVE) $(SHARED)
	tests/link.sh

SAN = -fsanitize=address,undefined,float-cast-overflow \
      -fno-sanitize-recover=all -fno-omit-frame-pointer
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan \
	    ARCHIVE=build/asan/liblstm.a EXDIR=build/asan/examples \
	    CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" check-run

valgrind: deps
	@$(MAKE) --no-print-directory BUILD=build/valgrind \
	    ARCHIVE=build/valgrind/liblstm.a EXDIR=build/valgrind/examples \
	    build/valgrind/tests/run_tests build/valgrind/examples/news_classifier \
	    build/valgrind/examples/char_lm
	CK_FORK=no LSTM_TEST_QUICK=1 LSTM_CLI=build/valgrind/examples/news_classifier \
	    LSTM_CHAR_LM=build/valgrind/examples/char_lm \
	    valgrind -q --error-exitcode=1 \
	    --leak-check=full --errors-for-leak-kinds=definite \
	    --show-possibly-lost=no build/valgrind/tests/run_tests

DATA ?= data/data.csv
RUN_OUT ?= runs

data: all
	examples/get_data.sh data/data.csv

SAMPLE = data/spanish-news-dev.csv.gz
run: deps
	@$(MAKE) --no-print-directory all
	@data="$(DATA)"; \
	if [ "$$data" = data/data.csv ] && [ ! -s data/data.csv ]; then \
	  if ! examples/get_data.sh data/data.csv >/dev/null 2>&1; then \
	    echo "make run: could not download the full data set; training on" \
	         "the bundled sample $(SAMPLE) (948 articles)"; \
	    data=$(SAMPLE); \
	  fi; \
	fi; \
	examples/news_classifier stats --data "$$data" && \
	examples/news_classifier train --data "$$data" --out $(RUN_OUT)

# libFuzzer harnesses (clang) with ASan + UBSan, FUZZ_SECONDS each, on the
# seed corpora in tests/fuzz/corpus (new inputs go to build/fuzz/corpus).
# The two tuned kernel files (recurrences, GEMM, weight gradients) are
# built without the sanitizers: clang spent over 17 minutes on
# lstm_cell.c with them (13 s without); make asan and make valgrind check
# those kernels.
FUZZ_SECONDS ?= 60
FUZZERS = csv text safetensors json checkpoint
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
fuzz:
	@$(MAKE) --no-print-directory DEBS="clang libclang-rt-14-dev" deps
	@$(MAKE) --no-print-directory CC=clang BUILD=build/fuzz \
	    ARCHIVE=build/fuzz/liblstm.a \
	    CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wno-pass-failed" \
	    KERNEL_CFLAGS="-fno-sanitize=all" build/fuzz/liblstm.a
	@for f in $(FUZZERS); do \
	  clang -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -Iinclude tests/fuzz/fuzz_$$f.c \
	    build/fuzz/liblstm.a $(BLAS_LIBS) -fopenmp -lz -lm \
	    -o build/fuzz/fuzz_$$f || exit 1; \
	done
	@for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus/$$f; \
	  echo "fuzz_$$f: $(FUZZ_SECONDS) s"; \
	  build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/ build/fuzz/corpus/$$f \
	    tests/fuzz/corpus/$$f 2>&1 | grep -E "stat::number_of_executed_units|\
	stat::peak_rss|ERROR|SUMMARY|Test unit written" || true; \
	  ls build/fuzz/crash-* build/fuzz/leak-* build/fuzz/timeout-* \
	    2>/dev/null && exit 1; \
	done; true

# Installs the Debian packages that are missing: directly as root, through
# sudo when it needs no password, else prints the one line to run.
deps:
	@missing=; \
	if command -v dpkg-query >/dev/null 2>&1; then \
	  for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	      grep -q 'ok installed' || missing="$$missing $$p"; \
	  done; \
	fi; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  SUDO=sudo; \
	else \
	  echo "liblstm: missing Debian packages; run:"; \
	  echo "  sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	echo "liblstm: installing$$missing"; \
	$$SUDO apt-get update -q >/dev/null && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q$$missing

checkdeps:
	@pkg-config --exists openblas 2>/dev/null || { echo "liblstm: OpenBLAS \
	not found by pkg-config: apt-get install -y libopenblas-dev pkg-config \
	(or 'make deps' as root)"; exit 1; }

checkdeps-test:
	@pkg-config --exists check 2>/dev/null || { echo "liblstm: Check not \
	found by pkg-config: apt-get install -y check (or 'make deps' as root)"; \
	exit 1; }

liblstm.pc:
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: liblstm' \
	  'Description: CPU LSTM library with hand-written forward and backward' \
	  'Version: $(VERSION)' \
	  'Requires.private: openblas zlib' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -llstm' \
	  'Libs.private: -fopenmp -lm' > $@

HEADERS = include/lstm.h include/lstm_data.h include/lstm_io.h \
          include/lstm_text.h include/lstm_train.h
install: $(ARCHIVE) $(SHARED) liblstm.pc
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(ARCHIVE) $(DESTDIR)$(PREFIX)/lib/liblstm.a
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf liblstm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/liblstm.so.$(SOVER)
	ln -sf liblstm.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/liblstm.so
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/
	install -m 644 liblstm.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/liblstm.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/liblstm.a \
	    $(DESTDIR)$(PREFIX)/lib/liblstm.so $(DESTDIR)$(PREFIX)/lib/liblstm.so.$(SOVER) \
	    $(DESTDIR)$(PREFIX)/lib/liblstm.so.$(VERSION) \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/liblstm.pc \
	    $(addprefix $(DESTDIR)$(PREFIX)/,$(HEADERS))

clean:
	rm -rf build lib/liblstm.a lib/liblstm.so* liblstm.pc examples/lstm_example examples/news_classifier examples/char_lm $(BENCHES) bench/dnnl_lstm

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
