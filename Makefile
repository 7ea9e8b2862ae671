# Entry points that do all set-up themselves on a fresh machine:
#   make reproduce   the main job (theory tables + figures, the CPU-scale grid, REPORT.md)
#   make reproduce-full  the same over seeds 0, 1, 2: REPORT.md with mean and sd (error bars)
#   make test        the test suite
# Both create .venv and install the project into it when missing, and reuse it when present.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The data root for tests and the main job: ../shared/data beside the checkout, unless set.
export ADVFEAT_DATA ?= $(abspath ../shared/data)

.PHONY: reproduce reproduce-full test test-slow test-multinode venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-slow: $(STAMP)
	$(PY) -m pytest -q --runslow tests

# A 3-node loopback Ray cluster, the store on a local S3 server, paper-cifar10's miniature submitted with
# `ray job submit`, one worker node killed mid-grid (ray_jobs/multinode.py; several minutes).
test-multinode: $(STAMP)
	$(PY) -m pytest -q --runslow tests/ray_jobs/test_ray_multinode.py

# The CPU-scale grid (ray_jobs/specs/laptop.toml) runs on an embedded 2-CPU Ray into store/ (done runs
# are skipped, interrupted ones resume); the report is written even when some runs failed, listing
# them as MISSING, and make then exits with the grid's status. The report is limited to `laptop`: the
# cifar-resnet18, mart, mart-budget and mnist-rule specs share some of its run hashes, and without
# --spec the report would list their sections too, nearly every run in them MISSING (pending).
reproduce: $(STAMP)
	$(PY) -m theory all
	$(PY) -m figures theory
	@status=0; $(PY) -m ray_jobs run laptop --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec laptop --store store --out figures/out || exit $$?; \
	echo "Report: $(abspath figures/out/REPORT.md) (theory and experiment figures in $(abspath figures/out)/)"; \
	exit $$status

# The error bars of issue 12: the same laptop grid over seeds 0, 1 and 2 (ray_jobs/seeds.py; seed 0 is
# `make reproduce`'s runs, same hashes, so a store filled by it is reused), then the report, whose tables
# show mean and sd over the seeds. Timed end to end (7 Dec, fresh clone of 4abf95d, Intel Xeon with AMX, empty
# store, `ray_jobs run laptop --seeds 0 1 2 --num-cpus 2`): 252 runs, 70 min 5 s, 7,985 CPU-s, load 0.9-2.9;
# its 86 seed-0 runs equal `make reproduce`'s store in every number and its mean/sd tables equal the README's.
# An interrupted run resumes from store/.
# Then the single-seed paper-grade runs of issue 12, reported into figures/out/single-seed/: the ResNet-18
# source's D_rand / D_det build and its students (cifar-resnet18.toml; on 7 Dec 1 h 37 min with D_rand at 50
# steps, then 57 min for D_rand at 100 steps and its students: ~2 h 34 min in all), the equal-cost Madry / TRADES / MART budget study
# (mart-budget.toml; 49.6 min), MNIST's Fig 2(b) with a source trained at the rule eps over seeds 0-2
# (mnist-rule.toml; ~14 min, figures/out/mnist-rule/), then the Tsipras MNIST grids on SmallCNN (tsipras.toml --scale smallcnn, figures/out/tsipras-smallcnn/;
# time in README), and last the README's MNIST PGD-AT model with aa-standard on all 10,000 test images in 20
# shards (mnist-pgd-at.toml, figures/out/mnist-pgd-at/; 7 Dec: training 20 min, full evaluation 9 min, each
# pair of 500-image shards 16-23 min, the 20 shards ~3 h 10 min, so ~3 h 40 min in all, the longest part of this target).
reproduce-full: $(STAMP)
	$(PY) -m theory all
	$(PY) -m figures theory
	@status=0; $(PY) -m ray_jobs run laptop --seeds 0 1 2 --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec laptop --seeds 0 1 2 --store store --out figures/out || exit $$?; \
	$(PY) -m ray_jobs run cifar-resnet18 --num-cpus 2 --store store || status=$$?; \
	$(PY) -m ray_jobs run mart-budget --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec cifar-resnet18 --spec mart-budget --store store --out figures/out/single-seed || exit $$?; \
	$(PY) -m ray_jobs run mnist-rule --seeds 0 1 2 --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec mnist-rule --seeds 0 1 2 --store store --out figures/out/mnist-rule || exit $$?; \
	$(PY) -m ray_jobs run tsipras --scale smallcnn --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec tsipras --scale smallcnn --store store --out figures/out/tsipras-smallcnn || exit $$?; \
	$(PY) -m ray_jobs run mnist-pgd-at --num-cpus 2 --store store || status=$$?; \
	$(PY) -m figures report --spec mnist-pgd-at --store store --out figures/out/mnist-pgd-at || exit $$?; \
	echo "Reports: REPORT.md in $(abspath figures/out) and in its single-seed/, mnist-rule/, tsipras-smallcnn/ and mnist-pgd-at/"; \
	exit $$status

clean:
	rm -rf $(VENV) figures/out
