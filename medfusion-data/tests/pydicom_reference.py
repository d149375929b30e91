"""What pydicom makes of DICOM files, for medfusion-data's tests to compare against.

Usage: pydicom_reference.py OUT_DIR NAME...   (names of pydicom's own test files)

For each file pydicom can decode with numpy alone, writes OUT_DIR/NAME.json (shape and
header facts) and float32 little-endian arrays: NAME.modality.f32 (Modality LUT applied),
NAME.file.f32 (the file's VOI LUT or first window, scaled to [0, 1] and inverted for
MONOCHROME1; absent when the file has neither) and NAME.lung.f32 (center -600, width 1500).
A file pydicom cannot decode here gets {"skipped": reason}.
"""

import json
import os
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing


def output_range(ds):
    """y_min, y_max of pydicom's windowing output (as pydicom's apply_windowing computes)."""
    bits = int(ds.BitsStored)
    if ds.PixelRepresentation == 0:
        lo, hi = 0, 2**bits - 1
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return lo, hi


def windowed(modality, ds, center=None, width=None):
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    if center is not None:
        ds = pydicom.Dataset(ds)
        ds.WindowCenter, ds.WindowWidth = center, width
        if "VOILUTFunction" in ds:
            del ds.VOILUTFunction
        if "VOILUTSequence" in ds:
            del ds.VOILUTSequence
        out = apply_windowing(modality, ds)
    elif "VOILUTSequence" in ds:
        out = apply_voi_lut(modality, ds, prefer_lut=True).astype("float64")
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        out = out / (2**bits - 1)
        return 1.0 - out if mono1 else out
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = apply_windowing(modality, ds)
    else:
        return None
    lo, hi = output_range(ds)
    out = (out - lo) / (hi - lo)
    return 1.0 - out if mono1 else out


def main():
    out_dir = sys.argv[1]
    for name in sys.argv[2:]:
        path = get_testdata_file(name)
        info = {"path": path}
        try:
            if path is None:
                raise RuntimeError("not among pydicom's test files")
            ds = pydicom.dcmread(path, force=True)
            if "TransferSyntaxUID" not in ds.file_meta:
                # No meta group: the encoding pydicom read it in.
                implicit, little = ds.original_encoding
                ds.file_meta.TransferSyntaxUID = (
                    pydicom.uid.ImplicitVRLittleEndian
                    if implicit
                    else pydicom.uid.ExplicitVRLittleEndian
                    if little
                    else pydicom.uid.ExplicitVRBigEndian
                )
            pixels = ds.pixel_array
        except Exception as e:  # noqa: BLE001 - any decoder problem means "skip this one"
            info["skipped"] = f"{type(e).__name__}: {e}"
            with open(os.path.join(out_dir, name + ".json"), "w") as f:
                json.dump(info, f)
            continue
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1))
        info.update(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            frames=frames,
            samples=samples,
            photometric=str(ds.PhotometricInterpretation),
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in ds.file_meta else None,
            patient_id=str(ds.get("PatientID", "")) or None,
            instance_number=int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None,
        )
        modality = apply_modality_lut(pixels, ds).astype("float64") if samples == 1 else pixels.astype("float64")
        modality.astype("<f4").tofile(os.path.join(out_dir, name + ".modality.f32"))
        if samples == 1:
            file_window = windowed(modality, ds)
            info["file_window"] = file_window is not None
            if file_window is not None:
                file_window.astype("<f4").tofile(os.path.join(out_dir, name + ".file.f32"))
            windowed(modality, ds, -600.0, 1500.0).astype("<f4").tofile(
                os.path.join(out_dir, name + ".lung.f32")
            )
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    main()
