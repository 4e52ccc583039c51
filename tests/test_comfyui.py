"""The node pack inside a real ComfyUI server (tests/comfy_server.py), driven over HTTP the way the
frontend drives it: the pack imports from custom_nodes/, its nodes are listed with the right
interface, and graphs of them run on a real photo and, with ComfyUI's core video nodes, on a clip."""
from __future__ import annotations

import io
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from clips import FACE_CENTRE, make_clip
from comfy_server import ComfyError, choices, fill_inputs, input_spec
from helpers import distinct_workflows

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]

#: node class -> its output types (what the nodes promise to workflows)
EXPECTED_OUTPUTS = {
    "GFPGANModelLoader": ("GFPGAN_MODEL",),
    "GFPGANFaceDetectorLoader": ("FACE_DETECTOR",),
    "GFPGANFaceParserLoader": ("FACE_PARSER",),
    "GFPGANDetectFaces": ("FACES", "MASK", "IMAGE"),
    "GFPGANCropFaces": ("IMAGE",),
    "GFPGANRestoreCrops": ("IMAGE",),
    "GFPGANPasteFaces": ("IMAGE", "MASK"),
    "GFPGANRestoreFaces": ("IMAGE", "MASK", "IMAGE"),
}
#: node class -> types it must take as (linked) inputs
EXPECTED_INPUT_TYPES = {
    "GFPGANModelLoader": set(),
    "GFPGANFaceDetectorLoader": set(),
    "GFPGANFaceParserLoader": set(),
    "GFPGANDetectFaces": {"IMAGE", "FACE_DETECTOR"},
    "GFPGANCropFaces": {"FACES"},
    "GFPGANRestoreCrops": {"GFPGAN_MODEL", "IMAGE"},
    "GFPGANPasteFaces": {"IMAGE", "FACES", "FACE_PARSER", "UPSCALE_MODEL"},
    "GFPGANRestoreFaces": {"GFPGAN_MODEL", "IMAGE", "FACE_DETECTOR", "FACE_PARSER", "UPSCALE_MODEL"},
}
#: node class -> input names that saved workflows refer to
EXPECTED_INPUT_NAMES = {
    "GFPGANModelLoader": {"model_name", "device"},
    "GFPGANFaceDetectorLoader": {"detector", "device"},
    "GFPGANFaceParserLoader": {"parser_name", "device"},
    "GFPGANDetectFaces": {"image", "detector", "threshold", "select", "indices", "max_faces", "min_size", "smoothing",
                          "fps"},
    "GFPGANPasteFaces": {"image", "faces", "crops", "mask", "feather", "visibility", "upscale", "parser",
                         "upscale_model", "background", "colour_match", "steady"},
    "GFPGANRestoreFaces": {"image", "model", "fidelity", "visibility", "mask", "select", "indices", "max_faces",
                           "upscale", "detector", "parser", "upscale_model", "background", "colour_match",
                           "threshold", "min_size", "feather", "smoothing", "fps", "steady"},
}
#: node class -> inputs added after workflows had been saved, with their widget defaults: optional (an
#: old prompt lacks them; the function's default keeps its old behaviour) and after every older widget
#: (the frontend gives a saved workflow's widget values to the widgets by position)
ADDED_INPUTS = {
    "GFPGANModelLoader": {"backend": "auto"},
    "GFPGANDetectFaces": {"smoothing": 0.5, "fps": 30.0},
    "GFPGANRestoreFaces": {"smoothing": 0.5, "fps": 30.0, "steady": 1.0},
    "GFPGANPasteFaces": {"steady": 1.0},
}
DISPLAY_NAMES = {
    "GFPGANModelLoader": "Load GFPGAN Model",
    "GFPGANFaceDetectorLoader": "Load Face Detector",
    "GFPGANFaceParserLoader": "Load Face Parser",
    "GFPGANDetectFaces": "Detect Faces",
    "GFPGANCropFaces": "Crop Faces",
    "GFPGANRestoreCrops": "Restore Faces",
    "GFPGANPasteFaces": "Paste Faces",
    "GFPGANRestoreFaces": "GFPGAN Restore Faces",
}
#: the examples' API versions (example_workflows/X.json is the UI format, for the browser test); they
#: sit in a subfolder so that ComfyUI's template browser lists only the UI ones
EXAMPLES = sorted((ROOT / "example_workflows" / "api").glob("*_api.json"))
#: the examples as saved with the classic node definitions: they must keep loading and running
SAVED = sorted((ROOT / "tests" / "data" / "saved_workflows").glob("*_api.json"))


WORKFLOWS = distinct_workflows(SAVED + EXAMPLES)


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _loads(path: Path, class_type: str) -> bool:
    return any(item["class_type"] == class_type for item in json.loads(path.read_text()).values())


VIDEO_WORKFLOWS = [p for p in WORKFLOWS if _loads(p, "LoadVideo")]
IMAGE_WORKFLOWS = [p for p in WORKFLOWS if p not in VIDEO_WORKFLOWS]
LINK_TYPES = {"IMAGE", "MASK", "GFPGAN_MODEL", "FACE_DETECTOR", "FACES", "FACE_PARSER", "UPSCALE_MODEL"}
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def decode(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)))


@pytest.fixture(scope="module")
def astronaut(comfy, tmp_path_factory) -> tuple[str, np.ndarray]:
    """skimage's astronaut (public domain, one face) uploaded to the server: (LoadImage name, pixels)."""
    img = data.astronaut()
    path = tmp_path_factory.mktemp("upload") / "astronaut.png"
    path.write_bytes(png(img))
    return comfy.upload_image(path), img


@pytest.fixture(scope="module")
def tiny_model(comfy, tiny_checkpoint) -> str:
    """The small random-weight GFPGAN, placed in the server's models/facerestore_models."""
    dest = comfy.models_dir / "facerestore_models" / tiny_checkpoint.name
    shutil.copy(tiny_checkpoint, dest)
    return dest.name


@pytest.fixture(scope="module")
def full_size_model(comfy) -> str:
    """A random-weight GFPGANv1Clean with 512 px crops (narrow, so small and quick), in the server's
    models/facerestore_models: the crop size that the stage nodes use by default."""
    import torch

    from gfp_core.archs import GFPGANv1Clean

    torch.manual_seed(5)
    net = GFPGANv1Clean(out_size=512, narrow=0.25)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("stylegan_decoder.") and name.endswith(".weight") and p.numel() == 1:
                p.fill_(0.25)  # non-zero noise strengths, as in a trained model
    dest = comfy.models_dir / "facerestore_models" / "narrow512_gfpgan.pth"
    torch.save({"params_ema": net.state_dict()}, dest)
    return dest.name


# ------------------------------------------------------------------------------------ the server
def test_server_starts_with_the_pack_imported(comfy):
    log = comfy.log()
    pack_lines = [line for line in log.splitlines() if str(comfy.pack_dir) in line]
    assert any("seconds" in line for line in pack_lines), f"the pack was not loaded:\n{comfy.log_tail()}"
    assert not [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line], log
    assert "Unable to parse pyproject.toml" not in log  # ComfyUI reads our [tool.comfy] table
    assert comfy.startup_s < 90, f"ComfyUI took {comfy.startup_s:.0f} s to start"

    info = comfy.object_info()
    assert "LoadImage" in info and "SaveImage" in info
    ours = sorted(n for n, i in info.items() if i["python_module"] == f"custom_nodes.{comfy.pack_name}")
    assert ours == sorted(EXPECTED_OUTPUTS), f"the pack's nodes in /object_info: {ours}\n{comfy.log_tail()}"
    for name, display_name in DISPLAY_NAMES.items():
        assert info[name]["display_name"] == display_name


def test_the_pack_registers_through_its_schema_entry_point(comfy):
    """ComfyUI's loader takes NODE_CLASS_MAPPINGS first when a pack has both: the pack has only
    comfy_entrypoint, so its nodes are schema (v3) nodes, registered from their schemas."""
    import ast

    tree = ast.parse((ROOT / "__init__.py").read_text())
    names = {t.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert "NODE_CLASS_MAPPINGS" not in names
    assert "comfy_entrypoint" in (ROOT / "__init__.py").read_text()
    assert "Error while calling comfy_entrypoint" not in comfy.log()


def test_every_node_and_input_says_what_it_is_for(comfy):
    """Descriptions (the node's tooltip and help) and tooltips for every input and output, as the
    frontend gets them from /object_info."""
    info = comfy.object_info()
    for name in EXPECTED_OUTPUTS:
        node_info = info[name]
        assert len(node_info["description"]) > 40, f"{name}: {node_info['description']!r}"
        for input_name, (_, options) in input_spec(node_info).items():
            assert len(options.get("tooltip", "")) > 10, f"{name}.{input_name} has no tooltip"
        assert all(tip for tip in node_info["output_tooltips"]), f"{name}: {node_info['output_tooltips']}"


@pytest.mark.parametrize("node", sorted(EXPECTED_OUTPUTS))
def test_node_interface(comfy, node):
    info = comfy.object_info(node)
    assert tuple(info["output"]) == EXPECTED_OUTPUTS[node]
    assert len(info["output_name"]) == len(info["output"])
    inputs = input_spec(info)
    assert EXPECTED_INPUT_NAMES.get(node, set()) <= set(inputs), sorted(inputs)
    link_types = {kind for kind, _ in inputs.values() if isinstance(kind, str) and kind in LINK_TYPES}
    assert EXPECTED_INPUT_TYPES[node] <= link_types, inputs
    for name, (kind, options) in inputs.items():
        assert isinstance(kind, list) or kind in LINK_TYPES | WIDGET_TYPES, f"{node}.{name}: unexpected type {kind}"
        if isinstance(kind, list) or kind == "COMBO":
            listed = choices(info, name)
            assert listed, f"{node}.{name}: a combo without choices cannot be used"
            assert options.get("default", listed[0]) in listed, f"{node}.{name}: default not among the choices"
    assert info["category"].startswith("GFPGAN")


def test_inputs_added_later_leave_saved_workflows_as_they_were(comfy):
    for node_class, defaults in ADDED_INPUTS.items():
        info = comfy.object_info(node_class)
        optional = info["input"].get("optional", {})
        for name, default in defaults.items():
            assert name in optional, f"{node_class}.{name} must be optional: saved prompts lack it"
            assert optional[name][1].get("default") == default
        assert info["input_order"]["optional"][-len(defaults):] == list(defaults)


def test_every_custom_type_is_consumed(comfy):
    """Each GFPGAN_MODEL / FACE_DETECTOR / FACES output can be plugged into some node of the pack."""
    info = comfy.object_info()
    produced = {t for n in EXPECTED_OUTPUTS if n in info for t in info[n]["output"]} - {"IMAGE", "MASK"}
    consumed = {kind for n in EXPECTED_OUTPUTS if n in info for kind, _ in input_spec(info[n]).values()
                if isinstance(kind, str)}
    assert produced and produced <= consumed, (produced, consumed)


# ------------------------------------------------------------------------------ the HTTP harness
def test_builtin_graph_runs_through_queue_wait_view(comfy, astronaut):
    name, img = astronaut
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "harness/invert"}},
    }
    entry = comfy.run(graph, timeout=60)
    [blob] = comfy.output_images(entry, "3")
    out = decode(blob)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - (255 - img.astype(int))).max() <= 1
    assert decode(comfy.view(name, type="input")).shape == img.shape  # the upload itself


def test_invalid_graph_is_reported(comfy):
    with pytest.raises(ComfyError, match="no_such_file.png|not found|Invalid image"):
        comfy.queue_prompt({"1": {"class_type": "LoadImage", "inputs": {"image": "no_such_file.png"}},
                            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})


# ------------------------------------------------------------------------------------- the nodes
def loaders(comfy, model_name: str) -> dict:
    return {
        "model": node(comfy, "GFPGANModelLoader", {}, {"model_name": model_name, "device": "cpu"}),
        "detector": node(comfy, "GFPGANFaceDetectorLoader", {}, {"detector": "embedded", "device": "cpu"}),
    }


def node(comfy, class_type: str, links: dict, values: dict | None = None) -> dict:
    """An API-format node whose inputs are linked by type, with widget defaults for the rest (and the
    embedded detector wherever a detector can be chosen: nothing can be downloaded here)."""
    info = comfy.object_info(class_type)
    values = dict(values or {})
    for name, (kind, _) in input_spec(info).items():
        if (isinstance(kind, list) or kind == "COMBO") and "embedded" in choices(info, name) and name not in values:
            values[name] = "embedded"
    return {"class_type": class_type, "inputs": fill_inputs(info, links, values)}


def save(source: list, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": prefix}}


def save_mask(graph: dict, node_id: str, source: list, prefix: str) -> None:
    graph[node_id + "_img"] = {"class_type": "MaskToImage", "inputs": {"mask": source}}
    graph[node_id] = save([node_id + "_img", 0], prefix)


def check_restored(out: np.ndarray, img: np.ndarray) -> None:
    """The face changed (random weights), the suit and the shuttle did not."""
    assert out.shape == img.shape
    diff = np.abs(out.astype(int) - img.astype(int)).max(axis=-1)
    assert (diff[:300, 100:350] > 8).sum() > 2000, "the face was not restored"
    assert diff[400:].max() <= 1 and diff[:, 400:].max() <= 1, "pixels away from the face changed"


def test_model_file_is_listed_by_the_loader(comfy, tiny_model):
    assert tiny_model in choices(comfy.object_info("GFPGANModelLoader"), "model_name")


def test_restore_faces_end_to_end(comfy, astronaut, tiny_model):
    name, img = astronaut
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, tiny_model)}
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0],
                                                          "FACE_DETECTOR": ["detector", 0]})
    graph["save"] = save(["restore", 0], "e2e/restored")
    save_mask(graph, "save_mask", ["restore", 1], "e2e/mask")
    graph["save_faces"] = save(["restore", 2], "e2e/faces")
    entry = comfy.run(graph, timeout=120)

    [out] = [decode(b) for b in comfy.output_images(entry, "save")]
    check_restored(out, img)
    [mask] = [decode(b) for b in comfy.output_images(entry, "save_mask")]
    mask = mask if mask.ndim == 2 else mask[..., 0]
    assert mask.shape == img.shape[:2]
    assert mask[:300, 100:350].max() > 200 and mask[400:].max() == 0 and mask[:, 400:].max() == 0
    faces = [decode(b) for b in comfy.output_images(entry, "save_faces")]
    assert len(faces) >= 1 and faces[0].ndim == 3 and faces[0].shape[0] == faces[0].shape[1]


def test_stage_nodes_match_the_all_in_one_node(comfy, astronaut, full_size_model):
    """Detect → crop → restore crops → paste gives what GFPGANRestoreFaces gives (with a 512 px model,
    the stages' default crop size: with other sizes the crops are resampled once more)."""
    name, img = astronaut
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, full_size_model)}
    image, model, detector = ["image", 0], ["model", 0], ["detector", 0]
    graph["detect"] = node(comfy, "GFPGANDetectFaces", {"IMAGE": image, "FACE_DETECTOR": detector})
    faces = ["detect", 0]
    graph["crop"] = node(comfy, "GFPGANCropFaces", {"FACES": faces, "IMAGE": image})
    graph["restore_crops"] = node(comfy, "GFPGANRestoreCrops", {"IMAGE": ["crop", 0], "GFPGAN_MODEL": model})

    # the paste node takes two images: the picture and the restored crops
    paste_info = comfy.object_info("GFPGANPasteFaces")
    image_inputs = [n for n, (kind, _) in input_spec(paste_info).items() if kind == "IMAGE"]
    crop_inputs = [n for n in image_inputs if any(w in n.lower() for w in ("crop", "face", "restored"))]
    assert len(image_inputs) == 2 and len(crop_inputs) == 1, f"which IMAGE input is which? {image_inputs}"
    values = {crop_inputs[0]: ["restore_crops", 0]}
    values.update({n: image for n in image_inputs if n not in crop_inputs})
    graph["paste"] = node(comfy, "GFPGANPasteFaces", {"FACES": faces}, values)
    graph["save_paste"] = save(["paste", 0], "stages/pasted")
    graph["save_crops"] = save(["crop", 0], "stages/crops")
    save_mask(graph, "save_detect_mask", ["detect", 1], "stages/detect_mask")
    graph["all_in_one"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": image, "GFPGAN_MODEL": model,
                                                             "FACE_DETECTOR": detector})
    graph["save_all"] = save(["all_in_one", 0], "stages/all_in_one")
    entry = comfy.run(graph, timeout=120)

    [pasted] = [decode(b) for b in comfy.output_images(entry, "save_paste")]
    [all_in_one] = [decode(b) for b in comfy.output_images(entry, "save_all")]
    check_restored(pasted, img)
    assert np.abs(pasted.astype(int) - all_in_one.astype(int)).max() <= 2
    crops = [decode(b) for b in comfy.output_images(entry, "save_crops")]
    assert len(crops) == 1 and crops[0].shape == (512, 512, 3)  # one face, aligned crop
    [mask] = [decode(b) for b in comfy.output_images(entry, "save_detect_mask")]
    mask = mask if mask.ndim == 2 else mask[..., 0]
    assert mask.shape == img.shape[:2] and mask[:300, 100:350].max() > 0 and mask[400:].max() == 0


def test_node_errors_reach_the_user(comfy, astronaut):
    """A known model that is not on disk, offline: the run fails with the library's message, not a hang."""
    listed = choices(comfy.object_info("GFPGANModelLoader"), "model_name")
    known = [c for c in listed if not Path(c).suffix and not (comfy.models_dir / "facerestore_models" / c).exists()]
    if not known:
        pytest.skip("the loader lists no registry model that could be missing")
    name, _ = astronaut
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, known[0])}
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0],
                                                          "FACE_DETECTOR": ["detector", 0]})
    graph["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["restore", 0]}}
    with pytest.raises(ComfyError, match="GFPGANModelLoader") as err:
        comfy.run(graph, timeout=120)
    assert "offline" in str(err.value).lower() or "HF_HUB_OFFLINE" in str(err.value)


@pytest.mark.parametrize("path", IMAGE_WORKFLOWS, ids=_id)
def test_example_workflow_runs(comfy, astronaut, full_size_model, path):
    """The example workflows, as shipped and as saved with the classic node definitions, run as they
    are (with our photo and model file)."""
    name, img = astronaut
    graph = json.loads(path.read_text())
    for item in graph.values():
        if item["class_type"] == "LoadImage":
            item["inputs"]["image"] = name
        elif item["class_type"] == "GFPGANModelLoader":
            item["inputs"]["model_name"] = full_size_model
    entry = comfy.run(graph, timeout=180)

    saved = {nid: item for nid, item in graph.items() if item["class_type"] == "SaveImage"}
    assert saved
    for nid, item in saved.items():
        images = [decode(b) for b in comfy.output_images(entry, nid)]
        assert images, f"SaveImage {nid} wrote nothing"
        source_id, index = item["inputs"]["images"]
        if graph[source_id]["class_type"] in ("GFPGANPasteFaces", "GFPGANRestoreFaces") and index == 0:
            check_restored(images[0], img)



def test_the_template_browser_lists_only_the_ui_examples(comfy):
    """ComfyUI lists a pack's example_workflows/*.json as templates: the UI workflows, served as they
    are; their API versions (example_workflows/api/) are not templates."""
    ui = sorted(p for p in (ROOT / "example_workflows").glob("*.json"))
    listed = comfy.get("/workflow_templates").json().get(comfy.pack_name, [])
    assert sorted(listed) == [p.stem for p in ui]
    for path in ui:
        served = comfy.get(f"/api/workflow_templates/{comfy.pack_name}/{path.name}").content
        assert json.loads(served) == json.loads(path.read_text())
        assert (ROOT / "example_workflows" / "api" / f"{path.stem}_api.json").is_file()


def test_each_node_has_a_help_page(comfy):
    """The frontend's node help for a custom pack reads /extensions/<pack>/docs/<node id>.md (the
    pack's WEB_DIRECTORY): one page per node, naming every input and output."""
    info = comfy.object_info()
    for name, display_name in DISPLAY_NAMES.items():
        page = comfy.get(f"/extensions/{comfy.pack_name}/docs/{name}.md").text
        assert page.startswith(f"# {display_name}\n"), page[:80]
        for input_name in input_spec(info[name]):
            assert f"`{input_name}`" in page, f"{name}: the help page does not mention {input_name}"
        for output_name in info[name]["output_name"]:
            assert f"`{output_name}`" in page, f"{name}: the help page does not mention {output_name}"


def test_registry_metadata():
    """[tool.comfy] for the Comfy Registry: publisher, display name and an icon that ships with the pack."""
    import tomllib

    comfy_table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
    assert comfy_table["PublisherId"] and comfy_table["DisplayName"]
    icon = Image.open(ROOT / comfy_table["Icon"])
    assert icon.format == "PNG" and icon.width == icon.height <= 400
    assert isinstance(comfy_table.get("includes"), list)


def test_bad_input_in_a_graph_fails_clearly_and_the_server_goes_on(comfy, astronaut, tiny_model):
    name, img = astronaut
    base = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, tiny_model)}

    out_of_range = dict(base)
    out_of_range["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0],
                                                                 "FACE_DETECTOR": ["detector", 0]},
                                   {"select": "indices", "indices": "3"})
    out_of_range["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["restore", 0]}}
    with pytest.raises(ComfyError, match="face index 3 is out of range: 1 faces were found"):
        comfy.run(out_of_range, timeout=120)

    # crops of another picture (a different number of faces) pasted into this one
    mismatch = dict(base)
    mismatch["small"] = {"class_type": "ImageScale", "inputs": {"image": ["image", 0], "upscale_method": "bilinear",
                                                                "width": 256, "height": 256, "crop": "disabled"}}
    mismatch["detect"] = node(comfy, "GFPGANDetectFaces", {"IMAGE": ["image", 0], "FACE_DETECTOR": ["detector", 0]})
    mismatch["crop"] = node(comfy, "GFPGANCropFaces", {"FACES": ["detect", 0], "IMAGE": ["small", 0]})
    mismatch["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["crop", 0]}}
    with pytest.raises(ComfyError, match=r"these faces were found in 1 frame\(s\) of size\(s\) \[\(512, 512\)\]"):
        comfy.run(mismatch, timeout=120)

    # the server keeps serving: a good prompt right after runs
    good = dict(base)
    good["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0],
                                                         "FACE_DETECTOR": ["detector", 0]})
    good["save"] = save(["restore", 0], "after_errors/restored")
    [out] = [decode(b) for b in comfy.output_images(comfy.run(good, timeout=120), "save")]
    check_restored(out, img)


def test_a_bad_face_choice_is_refused_before_the_prompt_runs(comfy, astronaut, tiny_model):
    name, _ = astronaut
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, tiny_model)}
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0]},
                            {"select": "indices", "indices": "0,x"})
    graph["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["restore", 0]}}
    with pytest.raises(ComfyError, match="face indices must be whole numbers") as err:
        comfy.queue_prompt(graph)
    assert "custom_validation_failed" in str(err.value)


def test_a_batch_of_frames_with_and_without_faces(comfy, astronaut, tiny_model):
    name, img = astronaut
    graph = {"image": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, tiny_model)}
    graph["blank"] = {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1,
                                                             "color": 0x808080}}
    graph["frames"] = {"class_type": "ImageBatch", "inputs": {"image1": ["image", 0], "image2": ["blank", 0]}}
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": ["frames", 0], "GFPGAN_MODEL": ["model", 0],
                                                          "FACE_DETECTOR": ["detector", 0]})
    graph["save"] = save(["restore", 0], "frames/restored")
    save_mask(graph, "save_mask", ["restore", 1], "frames/mask")
    entry = comfy.run(graph, timeout=120)
    frames = [decode(b) for b in comfy.output_images(entry, "save")]
    masks = [decode(b) for b in comfy.output_images(entry, "save_mask")]
    assert len(frames) == 2 and len(masks) == 2
    check_restored(frames[0], img)
    assert np.abs(frames[1].astype(int) - 0x80).max() <= 1  # the frame without a face is unchanged
    second_mask = masks[1] if masks[1].ndim == 2 else masks[1][..., 0]
    assert second_mask.max() == 0


# ------------------------------------------------------ the whole engine: parsing, background, colour
@pytest.fixture(scope="module")
def parser_file(comfy) -> str:
    """Seeded random ParseNet weights under the release name in models/facerestore_models (the
    registry's SHA-256 cannot match: the loader takes a file picked from the folder as it is)."""
    from gfp_core.synthetic import write_random_checkpoint

    dest = comfy.models_dir / "facerestore_models" / "parsing_parsenet.pth"
    if not dest.exists():
        write_random_checkpoint("parsenet", dest, seed=21)
    return dest.name


@pytest.fixture(scope="module")
def upscale_model_file(comfy) -> str:
    """Seeded random Real-ESRGAN x2plus weights in models/upscale_models, for core's Load Upscale Model."""
    from gfp_core.synthetic import write_random_checkpoint

    folder = comfy.models_dir / "upscale_models"
    folder.mkdir(exist_ok=True)
    dest = folder / "RealESRGAN_x2plus.pth"
    if not dest.exists():
        write_random_checkpoint("realesrgan_x2plus", dest, seed=22)
    return dest.name


def differs(graph: dict, node_id: str, a: list, b: list, prefix: str) -> None:
    """Nodes (ComfyUI's core ones only) that save a mask which is white wherever the float IMAGEs ``a``
    and ``b`` differ at all, in any channel: |a - b| summed over channels, thresholded at 0. Floats
    are compared inside the server, where an 8-bit PNG could not tell them apart."""
    masks = []
    for order, (x, y) in enumerate(((a, b), (b, a))):  # ImageBlend's difference is a - b clamped at 0
        diff = f"{node_id}_d{order}"
        graph[diff] = {"class_type": "ImageBlend", "inputs": {"image1": x, "image2": y, "blend_factor": 1.0,
                                                              "blend_mode": "difference"}}
        for channel in ("red", "green", "blue"):
            graph[f"{diff}_{channel}"] = {"class_type": "ImageToMask", "inputs": {"image": [diff, 0],
                                                                                  "channel": channel}}
            masks.append([f"{diff}_{channel}", 0])
    total = masks[0]
    for k, mask in enumerate(masks[1:]):
        graph[f"{node_id}_sum{k}"] = {"class_type": "MaskComposite", "inputs": {
            "destination": total, "source": mask, "x": 0, "y": 0, "operation": "add"}}
        total = [f"{node_id}_sum{k}", 0]
    graph[f"{node_id}_any"] = {"class_type": "ThresholdMask", "inputs": {"mask": total, "value": 0.0}}
    save_mask(graph, node_id, [f"{node_id}_any", 0], prefix)


def test_the_whole_engine_on_a_float_batch(comfy, astronaut, full_size_model, parser_file, upscale_model_file):
    """Three float frames (a face, no face, a face; values between 8-bit levels) through the stage chain
    and through GFPGANRestoreFaces with select = indices, the parsing mask (Load Face Parser), colour
    matching and, in a third run, a background from core's Load Upscale Model: all succeed; at
    upscale 1 without a background network the faceless frame comes back exactly (compared in float
    inside the server); the nodes' notes reach the history."""
    name, img = astronaut
    g: dict = {"photo": {"class_type": "LoadImage", "inputs": {"image": name}}}
    g["small"] = {"class_type": "ImageScale", "inputs": {"image": ["photo", 0], "upscale_method": "area",
                                                        "width": 256, "height": 256, "crop": "disabled"}}
    g["grey"] = {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 1,
                                                       "color": 0x6A7B8C}}
    # 0.9·photo + 0.1·grey: floats between 8-bit levels
    g["face"] = {"class_type": "ImageBlend", "inputs": {"image1": ["small", 0], "image2": ["grey", 0],
                                                       "blend_factor": 0.1, "blend_mode": "normal"}}
    g["corner"] = {"class_type": "ImageCrop", "inputs": {"image": ["photo", 0], "width": 160, "height": 160,
                                                        "x": 352, "y": 352}}  # the suit: no face
    g["corner_f"] = {"class_type": "ImageBlend", "inputs": {"image1": ["corner", 0], "image2": ["corner", 0],
                                                           "blend_factor": 0.0, "blend_mode": "normal"}}
    g["two"] = {"class_type": "ImageBatch", "inputs": {"image1": ["face", 0], "image2": ["corner_f", 0]}}
    g["frames"] = {"class_type": "ImageBatch", "inputs": {"image1": ["two", 0], "image2": ["face", 0]}}
    g["faceless"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["frames", 0], "batch_index": 1,
                                                               "length": 1}}
    g.update(loaders(comfy, full_size_model))
    g["parser"] = node(comfy, "GFPGANFaceParserLoader", {}, {"parser_name": parser_file, "device": "cpu"})
    g["upscaler"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscale_model_file}}
    frames, model, parser = ["frames", 0], ["model", 0], ["parser", 0]
    options = {"select": "indices", "indices": "0", "mask": "parsing", "colour_match": True}

    # the stage chain
    g["detect"] = node(comfy, "GFPGANDetectFaces", {"IMAGE": frames, "FACE_DETECTOR": ["detector", 0]},
                       {"select": "indices", "indices": "0"})
    g["crop"] = node(comfy, "GFPGANCropFaces", {"FACES": ["detect", 0], "IMAGE": frames})
    g["restore_crops"] = node(comfy, "GFPGANRestoreCrops", {"IMAGE": ["crop", 0], "GFPGAN_MODEL": model})
    g["paste"] = node(comfy, "GFPGANPasteFaces", {"FACES": ["detect", 0], "FACE_PARSER": parser},
                      {"image": frames, "crops": ["restore_crops", 0], "mask": "parsing", "colour_match": True})
    # the all-in-one node, no detector wired: the detector loader's default (offline: the embedded one)
    g["all"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": frames, "GFPGAN_MODEL": model, "FACE_PARSER": parser},
                    options)
    # again with a background network, at upscale 2
    g["all_bg"] = node(comfy, "GFPGANRestoreFaces", {"IMAGE": frames, "GFPGAN_MODEL": model, "FACE_PARSER": parser,
                                                     "UPSCALE_MODEL": ["upscaler", 0]}, {**options, "upscale": 2.0})
    for source in ("paste", "all"):
        g[f"{source}_faceless"] = {"class_type": "ImageFromBatch", "inputs": {"image": [source, 0],
                                                                             "batch_index": 1, "length": 1}}
        differs(g, f"diff_{source}", [f"{source}_faceless", 0], ["faceless", 0], f"whole/diff_{source}")
    g["save_input"] = save(frames, "whole/input")
    g["save_paste"] = save(["paste", 0], "whole/paste")
    g["save_all"] = save(["all", 0], "whole/all")
    g["save_all_faces"] = save(["all", 2], "whole/all_faces")
    g["save_bg"] = save(["all_bg", 0], "whole/background")
    entry = comfy.run(g, timeout=600)

    inputs = [decode(b) for b in comfy.output_images(entry, "save_input")]
    pasted = [decode(b) for b in comfy.output_images(entry, "save_paste")]
    all_in_one = [decode(b) for b in comfy.output_images(entry, "save_all")]
    assert len(inputs) == len(pasted) == len(all_in_one) == 3
    for source in ("paste", "all"):
        [diff] = [decode(b) for b in comfy.output_images(entry, f"diff_{source}")]
        assert diff.max() == 0, f"{source}: {(diff > 0).sum()} pixels of the faceless frame changed"
    for out in (pasted, all_in_one):
        assert np.array_equal(out[1], inputs[1])  # the 8-bit rendering agrees as well
        for k in (0, 2):  # the face (index 0) was restored: random weights change it
            changed = np.abs(out[k].astype(int) - inputs[k].astype(int)).max(axis=-1)
            assert (changed[:150, 50:175] > 8).sum() > 300, f"frame {k}: the face was not restored"
            assert changed[200:].max() <= 1 and changed[:, 200:].max() <= 1, f"frame {k}: pixels away from it changed"
    # the stage chain pastes colour-matched crops in float, the engine rounds them to 8 bits first
    for p, a in zip(pasted, all_in_one):
        assert np.abs(p.astype(int) - a.astype(int)).max() <= 2
    faces = [decode(b) for b in comfy.output_images(entry, "save_all_faces")]
    assert len(faces) == 2 and all(f.shape == (512, 512, 3) for f in faces)  # face 0 of frames 0 and 2

    backgrounds = [decode(b) for b in comfy.output_images(entry, "save_bg")]
    assert len(backgrounds) == 3 and all(b.shape == (512, 512, 3) for b in backgrounds)
    bg_notes = entry["outputs"]["all_bg"]["text"]
    assert any("with only the background upscaled" in n for n in bg_notes), bg_notes

    notes = entry["outputs"]["all"]["text"]  # shown under the node
    assert any("1 of 3 frames had no face" in n for n in notes), notes
    assert any("embedded" in n for n in notes), notes  # why the default detector was not used


# ------------------------------------------------------------------- video: ComfyUI's core video nodes
VIDEO_FPS = 24  # not ComfyUI's default of 30: the rate must come from the file


def write_clip(path: Path, frames: np.ndarray, fps: int) -> Path:
    """``frames`` as an H.264 .mp4 with a 440 Hz AAC tone as long as the video, written with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "12"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = round(48000 * len(frames) / fps)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 960):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, start:start + 960]), format="flt",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], Fraction, float | None]:
    """A file's RGB frames, its frame rate and its audio's length in seconds (None: no audio)."""
    import av

    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        rate = Fraction(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(stream)]
    with av.open(str(path)) as box:
        if not box.streams.audio:
            return frames, rate, None
        audio = box.streams.audio[0]
        seconds = sum(f.samples for f in box.decode(audio)) / audio.rate
    return frames, rate, seconds


@pytest.fixture(scope="module")
def moving_clip(comfy, tmp_path_factory):
    """A 12-frame 256×256 clip of a moving face at 24 fps with sound, uploaded into the server's input
    folder (Load Video lists the videos there): (Load Video name, file, the clip)."""
    clip = make_clip("moving", frames=12, size=(256, 256), fps=VIDEO_FPS)
    path = write_clip(tmp_path_factory.mktemp("video") / "moving_face.mp4", clip.frames, VIDEO_FPS)
    return comfy.upload_image(path), path, clip


@pytest.mark.parametrize("path", VIDEO_WORKFLOWS, ids=_id)
def test_video_workflow_restores_a_clip_and_keeps_its_frames_rate_and_sound(comfy, moving_clip, tiny_model,
                                                                            tmp_path, path):
    """Load Video → Get Video Components → GFPGAN Restore Faces (smoothing, fps wired) → Create Video
    (fps and audio wired) → Save Video, as shipped: the saved file has every frame at the source's
    rate, its sound, and restored faces."""
    name, source_path, clip = moving_clip
    graph = json.loads(path.read_text())
    for item in graph.values():
        if item["class_type"] == "LoadVideo":
            item["inputs"]["file"] = name
        elif item["class_type"] == "GFPGANModelLoader":
            item["inputs"]["model_name"] = tiny_model
    assert name in input_spec(comfy.object_info("LoadVideo"))["file"][1]["options"]
    entry = comfy.run(graph, timeout=180)

    [saved] = [nid for nid, item in graph.items() if item["class_type"] == "SaveVideo"]
    [blob] = comfy.output_images(entry, saved)
    (tmp_path / "restored.mp4").write_bytes(blob)
    source, source_rate, source_sound = read_video(source_path)
    frames, rate, sound = read_video(tmp_path / "restored.mp4")
    assert len(frames) == len(source) == len(clip) and rate == source_rate == VIDEO_FPS
    assert sound is not None and source_sound is not None, "the sound was lost"
    assert abs(sound - len(clip) / VIDEO_FPS) < 0.1, sound
    centres = clip.truth(np.array([FACE_CENTRE]))[:, 0]
    for k, (out, src, (x, y)) in enumerate(zip(frames, source, centres.round().astype(int))):
        diff = np.abs(out.astype(int) - src.astype(int)).max(axis=-1)
        face = diff[y - 16:y + 16, x - 16:x + 16]
        assert face.mean() > 30, f"frame {k}: the face was not restored ({face.mean():.1f})"
        # the frame's edge is far from the face: only Save Video's H.264 changes it (3 to 6 levels here)
        edge = np.concatenate([diff[:12].ravel(), diff[-12:].ravel(), diff[:, :12].ravel(), diff[:, -12:].ravel()])
        assert edge.mean() < 8, f"frame {k}: pixels away from the face changed ({edge.mean():.1f})"



def tiff_frames(frames: np.ndarray) -> bytes:
    """Frames as one multi-page TIFF: Load Image gives them as one IMAGE batch, losslessly."""
    buf = io.BytesIO()
    pages = [Image.fromarray(f) for f in frames]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def test_detect_faces_with_smoothing_keeps_a_face_s_number_when_another_appears(comfy, tiny_model, tmp_path):
    """Six frames: the astronaut on the right throughout, a second face on the left from frame 3. With
    smoothing the right one is face 0 in every frame (tracks are numbered by first appearance), so
    'indices 0' covers only the right half, in the Detect Faces mask and in GFPGAN Restore Faces' mask
    alike; a prompt without smoothing (saved before it existed) numbers each frame left to right, and
    face 0 becomes the newcomer."""
    right = make_clip("still", frames=6, size=(256, 256), seed=5).frames
    left = make_clip("still", frames=6, size=(256, 256), seed=6).frames
    left[:3] = 90
    path = tmp_path / "two_faces.tiff"
    path.write_bytes(tiff_frames(np.concatenate([left, right], axis=2)))  # 256×512
    name = comfy.upload_image(path)

    graph = {"frames": {"class_type": "LoadImage", "inputs": {"image": name}}, **loaders(comfy, tiny_model)}
    links = {"IMAGE": ["frames", 0], "FACE_DETECTOR": ["detector", 0]}
    first = {"select": "indices", "indices": "0"}
    graph["tracked"] = node(comfy, "GFPGANDetectFaces", links, {**first, "smoothing": 0.5, "fps": 30.0})
    graph["per_frame"] = node(comfy, "GFPGANDetectFaces", links, first)  # no smoothing key: as before
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {**links, "GFPGAN_MODEL": ["model", 0]},
                            {**first, "smoothing": 0.5})
    save_mask(graph, "save_tracked", ["tracked", 1], "clip/tracked_mask")
    save_mask(graph, "save_per_frame", ["per_frame", 1], "clip/per_frame_mask")
    save_mask(graph, "save_restore", ["restore", 1], "clip/restore_mask")
    graph["save_preview"] = save(["tracked", 2], "clip/preview")
    entry = comfy.run(graph, timeout=120)

    def masks(node_id: str) -> list[np.ndarray]:
        return [m if m.ndim == 2 else m[..., 0] for m in map(decode, comfy.output_images(entry, node_id))]

    for node_id in ("save_tracked", "save_restore"):
        covered = masks(node_id)
        assert len(covered) == 6
        for k, mask in enumerate(covered):
            assert mask[:, :256].max() == 0 and mask[:, 256:].max() > 200, f"{node_id}, frame {k}"
    per_frame = masks("save_per_frame")
    assert per_frame[0][:, 256:].max() > 200 and per_frame[-1][:, :256].max() > 200
    assert per_frame[-1][:, 256:].max() == 0
    previews = [decode(b) for b in comfy.output_images(entry, "save_preview")]
    assert len(previews) == 6 and previews[0].shape == (256, 512, 3)


# ------------------------------------------------------------------------- ComfyUI's model management
def _ours(state: dict) -> set[str]:
    return {m["class"] for m in state["loaded"]}


def _free(comfy, done, timeout: float = 60.0, **flags) -> dict:
    """POST /free, then the loaded models once ``done(state)``. The request is repeated every few
    seconds: ComfyUI's prompt worker can miss one that arrives while it collects garbage after a
    prompt, and would then sleep until the next prompt."""
    import time

    t0 = time.monotonic()
    while True:
        comfy.free(**flags)
        for _ in range(10):
            state = comfy.loaded_models()
            if done(state) or time.monotonic() - t0 > timeout:
                return state
            time.sleep(0.3)


def test_models_are_handed_to_comfyui_model_management(comfy, tiny_model, parser_file, upscale_model_file):
    """While a prompt runs, the restorer and the parser are in ComfyUI's list of loaded models (the
    probe node sees them after GFPGAN Restore Faces); the wired upscale model is loaded for the node's
    run only. /free with unload_models takes them out of the list, though the prompt cache still holds
    the loader outputs (a rerun loads them again); with free_memory as well the cache lets go and the
    networks themselves are freed."""
    # a small faceless frame: the models are loaded before the work whatever it finds, and the upscale
    # model's run over the frame stays cheap on a CPU
    graph = {"image": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 96, "batch_size": 1,
                                                              "color": 0x808080}},
             "model": node(comfy, "GFPGANModelLoader", {}, {"model_name": tiny_model, "device": "auto"}),
             "detector": node(comfy, "GFPGANFaceDetectorLoader", {}, {"detector": "embedded"}),
             "parser": node(comfy, "GFPGANFaceParserLoader", {}, {"parser_name": parser_file, "device": "auto"}),
             "upscaler": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscale_model_file}}}
    graph["restore"] = node(comfy, "GFPGANRestoreFaces", {
        "IMAGE": ["image", 0], "GFPGAN_MODEL": ["model", 0], "FACE_DETECTOR": ["detector", 0],
        "FACE_PARSER": ["parser", 0], "UPSCALE_MODEL": ["upscaler", 0]}, {"mask": "parsing"})
    graph["probe"] = {"class_type": "GFPTestLoadedModels", "inputs": {"after": ["restore", 0]}}
    managed = {"GFPGANv1Clean", "ParseNet"}

    during = comfy.run(graph, timeout=180)["outputs"]["probe"]["loaded"]
    assert managed <= {m["class"] for m in during}, during
    assert all(m["bytes"] > 0 for m in during), during  # counted by their size
    assert "RRDBNet" not in {m["class"] for m in during}, "the upscale model was left loaded without an owner"

    state = _free(comfy, lambda s: not managed & _ours(s), unload_models=True)
    assert not managed & _ours(state), state
    assert state["seen_alive"] >= 2, state  # the cached loader outputs still hold the networks

    graph["restore"]["inputs"]["fidelity"] = 0.9  # the restore runs again, on the cached loader outputs
    again = comfy.run(graph, timeout=180)["outputs"]["probe"]["loaded"]
    assert managed <= {m["class"] for m in again}, again

    state = _free(comfy, lambda s: not managed & _ours(s) and s["seen_alive"] == 0, unload_models=True,
                  free_memory=True)
    assert not managed & _ours(state) and state["seen_alive"] == 0, state
