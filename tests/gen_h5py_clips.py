#!/usr/bin/python3
"""gen_h5py_clips.py: small video clips with foreground masks written by h5py, as a user's
script would write them, for the pack tests (tests/test_pack.c). Regenerate (needs
python3-h5py and numpy; CI only reads the committed files):

    /usr/bin/python3 tests/gen_h5py_clips.py tests/ref/clips

Every clip is 4 frames of 6x5 pixels, 3 colour planes; clip value (c, t, y, x) =
(c * 120 + t * 30 + y * 5 + x) % 256 (plane 0 names its voxel); the mask is foreground where (t + 2y + 3x) % 4 == 0.

  thwc.h5   video (4, 6, 5, 3) uint8 (numpy's frame stack), mask (4, 6, 5) bool
  cthw.h5   video (3, 4, 6, 5) float32 (PyTorch's layout), mask (1, 4, 6, 5) uint8 with 7 for
            foreground
  plane.h5  video as thwc.h5, mask (4, 6, 5, 1) float64
  bad.h5    video as thwc.h5, mask (4, 6, 4) bool (a pixel column short), mask2 (4, 6, 5, 2) bool
"""
import os
import sys

import h5py
import numpy as np

C, T, H, W = 3, 4, 6, 5


def clip_cthw():
    c, t, y, x = np.meshgrid(np.arange(C), np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return ((c * 120 + t * 30 + y * 5 + x) % 256).astype(np.uint8)


def mask_thw():
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return (t + 2 * y + 3 * x) % 4 == 0


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/ref/clips"
    os.makedirs(out, exist_ok=True)
    thwc = np.ascontiguousarray(clip_cthw().transpose(1, 2, 3, 0))
    with h5py.File(os.path.join(out, "thwc.h5"), "w") as f:
        f["video"] = thwc
        f["mask"] = mask_thw()
    with h5py.File(os.path.join(out, "cthw.h5"), "w") as f:
        f["video"] = clip_cthw().astype(np.float32)
        f["mask"] = (mask_thw() * 7).astype(np.uint8)[None]
    with h5py.File(os.path.join(out, "plane.h5"), "w") as f:
        f["video"] = thwc
        f["mask"] = mask_thw().astype(np.float64)[..., None]
    with h5py.File(os.path.join(out, "bad.h5"), "w") as f:
        f["video"] = thwc
        f["mask"] = mask_thw()[:, :, :4]
        f["mask2"] = np.stack([mask_thw(), mask_thw()], axis=-1)


if __name__ == "__main__":
    main()
