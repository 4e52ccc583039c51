"""RestoreFormer and CodeFormer files in a real ComfyUI's models/facerestore_models: listed by the
model loader and restoring through the same nodes as GFPGAN (seeded random weights, release formats)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from comfy_server import choices, fill_inputs

pytestmark = pytest.mark.heavy

#: release file names as ComfyUI face packs keep them, and the fidelity each restore uses
FILES = {"RestoreFormer.pth": ("RestoreFormer", 1.0), "codeformer-v0.1.0.pth": ("CodeFormer", 0.5)}


def _node(comfy, class_type: str, links: dict, values: dict) -> dict:
    return {"class_type": class_type, "inputs": fill_inputs(comfy.object_info(class_type), links, values)}


def test_restoreformer_and_codeformer_files_restore_from_the_dropdown(comfy, tmp_path):
    from gfp_core.synthetic import random_state_dict

    folder = comfy.models_dir / "facerestore_models"
    for filename, (name, _) in FILES.items():
        torch.save({"params_ema": random_state_dict(name, seed=3)}, folder / filename)
    listed = choices(comfy.object_info("GFPGANModelLoader"), "model_name")
    assert set(FILES) <= set(listed)

    img = data.astronaut()
    upload = tmp_path / "astronaut.png"
    Image.fromarray(img).save(upload)
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": comfy.upload_image(upload)}},
             "detector": _node(comfy, "GFPGANFaceDetectorLoader", {}, {"detector": "embedded", "device": "cpu"})}
    for i, (filename, (_, fidelity)) in enumerate(FILES.items()):
        graph[f"model{i}"] = _node(comfy, "GFPGANModelLoader", {}, {"model_name": filename, "device": "cpu"})
        graph[f"restore{i}"] = _node(comfy, "GFPGANRestoreFaces",
                                     {"IMAGE": ["image", 0], "GFPGAN_MODEL": [f"model{i}", 0],
                                      "FACE_DETECTOR": ["detector", 0]},
                                     {"fidelity": fidelity, "upscale": 1})
        graph[f"save{i}"] = {"class_type": "SaveImage",
                             "inputs": {"images": [f"restore{i}", 0], "filename_prefix": f"face_models/{i}"}}
    entry = comfy.run(graph, timeout=300)

    for i in range(len(FILES)):
        [blob] = comfy.output_images(entry, f"save{i}")
        out = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
        assert out.shape == img.shape
        diff = np.abs(out.astype(int) - img.astype(int)).max(axis=-1)
        assert (diff[:300, 100:350] > 8).sum() > 2000, f"{list(FILES)[i]}: the face was not restored"
        assert diff[400:].max() <= 1 and diff[:, 400:].max() <= 1, "pixels away from the face changed"
