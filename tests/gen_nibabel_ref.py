#!/usr/bin/python3
# gen_nibabel_ref.py: reference statistics of the real NIfTI files Debian's python3-nibabel
# ships, computed once with nibabel and committed as tests/ref/nibabel_stats.txt; the C test
# (tests/test_nifti.c) reads the same files with the NIfTI C library and compares. CI needs
# no Python. Run with Debian's interpreter: /usr/bin/python3 tests/gen_nibabel_ref.py
#
# One line per file:
#   name version datatype big_endian ndim dims... orient min max mean sumsq v0 v1 v2
# where v0..v2 are the scaled values at three fixed voxel indices (the first voxel, the
# centre voxel and the last voxel of the first volume), in nibabel's [i,j,k(,t)] indexing.
import os, sys
import numpy as np
import nibabel as nib

DATA = "/usr/lib/python3/dist-packages/nibabel/tests/data"
FILES = ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "functional.nii", "standard.nii.gz"]
NAMES = {2: "uint8", 4: "int16", 8: "int32", 16: "float32", 64: "float64", 256: "int8", 512: "uint16", 768: "uint32"}

out = [f"# nibabel {nib.__version__}, numpy {np.__version__}; regenerate with /usr/bin/python3 tests/gen_nibabel_ref.py"]
for name in FILES:
    img = nib.load(os.path.join(DATA, name))
    hdr = img.header
    x = np.asarray(img.get_fdata(dtype=np.float64))
    version = 2 if isinstance(img, nib.Nifti2Image) else 1
    big = 1 if hdr.endianness == ">" else 0
    dt = NAMES[int(hdr["datatype"])]
    orient = "".join(nib.aff2axcodes(img.affine))
    first = x.reshape(x.shape[:3] + (-1,))[..., 0]
    idx = [(0, 0, 0), tuple(s // 2 for s in first.shape), tuple(s - 1 for s in first.shape)]
    vals = [float(first[i]) for i in idx]
    dims = " ".join(str(d) for d in x.shape)
    out.append(f"{name} {version} {dt} {big} {x.ndim} {dims} {orient} {x.min():.17g} {x.max():.17g} "
               f"{x.mean():.17g} {np.sum(x * x):.17g} " + " ".join(f"{v:.17g}" for v in vals))
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref", "nibabel_stats.txt")
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote", path)
