"""ONNX export of the restorer: the file runs in onnxruntime and gives PyTorch's faces."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gfp_core.cli import main
from gfp_core.export_onnx import ONNX_TOLERANCE, check_onnx, export_onnx
from gfp_core.weights import load_model

ort = pytest.importorskip("onnxruntime")


def test_cli_exports_a_graph_that_matches_pytorch(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export-onnx", str(tiny_checkpoint), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "within 0.001" in printed

    # the user's own run: a face-like input through onnxruntime and through the loaded model
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["faces"]
    g = torch.Generator().manual_seed(1)
    faces = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g) * 2 - 1, size=64, mode="bicubic")
    onnx_faces = session.run(None, {"faces": faces.numpy()})[0]
    model = load_model(tiny_checkpoint, device="cpu")
    with torch.inference_mode():
        torch_faces = model(faces, return_rgb=False)[0].numpy()
    assert onnx_faces.shape == (1, 3, 64, 64)
    assert np.abs(onnx_faces - torch_faces).max() <= ONNX_TOLERANCE
    assert np.abs(onnx_faces).max() > 0.01  # a real output, not zeros


def test_fixed_batch_and_fidelity(tiny_checkpoint, tmp_path):
    model = load_model(tiny_checkpoint, device="cpu", exact=True)
    out = export_onnx(model, tmp_path / "b2.onnx", batch_size=2, fidelity=0.5)
    check = check_onnx(out, model, fidelity=0.5)
    assert check.max_abs_diff <= ONNX_TOLERANCE
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 3, 64, 64]
    # fidelity is baked in: the graph is not the fidelity-1 model
    full = load_model(tiny_checkpoint, device="cpu", exact=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        published = full(x, return_rgb=False)[0].numpy()
    assert np.abs(session.run(None, {"faces": x.numpy()})[0] - published).max() > 1e-3


def test_bad_output_name_and_existing_file_are_clear_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["export-onnx", str(tiny_checkpoint), str(tmp_path / "model.pth")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    existing = tmp_path / "there.onnx"
    existing.write_bytes(b"x")
    assert main(["export-onnx", str(tiny_checkpoint), str(existing), "--no-check"]) == 2
    assert "exists" in capsys.readouterr().err
