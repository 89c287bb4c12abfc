#!/bin/sh
# install-deps.sh: the Debian 12 packages deconfound builds and runs with (run as root, or
# it uses sudo). The one list of packages: README, CI and the job scripts all use this.
set -e
PKGS="build-essential autoconf automake libtool pkg-config
      libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
      libnifti2-dev libniftiio-dev libznz-dev zlib1g-dev
      libopenblas-dev libscalapack-openmpi-dev libcunit1-dev
      gnuplot-nox clang libfuzzer-14-dev
      dataset-fashion-mnist python3-nibabel mricron-data"
# gnuplot-nox draws the plots (`deconfound plot`, plot.png at the end of a run); a run
# without it still succeeds and says so once; tests/plot.sh skips its plots.
# clang and libfuzzer-14-dev build the fuzz targets (tests/fuzz/run.sh, `make fuzz`); the
# build and `make check` do not need them, and the fuzz run is skipped without them.
# The last three are test data only: Fashion-MNIST's IDX files (synth:biased-fmnist and its
# test), the real NIfTI files nibabel ships (tests/test_nifti.c compares them with
# tests/ref/nibabel_stats.txt; no Python runs at test time), and MRIcron's templates (the
# Colin27 T1, its brain and the AAL atlas: `synth brain` and tests/synth_brain.sh, which
# read them where Debian installs them and commit nothing made from them). The tests skip
# without them.
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $PKGS
