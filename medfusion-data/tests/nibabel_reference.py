"""What nibabel makes of NIfTI files, for medfusion-data's tests to compare against.

Usage: nibabel_reference.py OUT_DIR PATH...   (a PATH without a slash is one of nibabel's own
test files)

For each file writes OUT_DIR/<name>.json ({"path", "shape", "zooms"}) and, for 3D files,
OUT_DIR/<name>.f32: get_fdata() (scaling applied) as little-endian float32 in [z][y][x] order.
"""

import json
import os
import sys

import nibabel
import numpy as np


def main():
    out_dir = sys.argv[1]
    data = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
    for arg in sys.argv[2:]:
        path = arg if "/" in arg else os.path.join(data, arg)
        name = os.path.basename(path)
        img = nibabel.load(path)
        info = {
            "path": path,
            "shape": [int(s) for s in img.shape],
            "zooms": [float(z) for z in img.header.get_zooms()],
            "version": 2 if isinstance(img, nibabel.Nifti2Image) else 1,
        }
        if len(img.shape) == 3:
            values = np.asarray(img.get_fdata(), dtype="<f4").transpose(2, 1, 0)
            np.ascontiguousarray(values).tofile(os.path.join(out_dir, name + ".f32"))
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    main()
