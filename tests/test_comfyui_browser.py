"""The UI-format example workflows load in ComfyUI's real frontend (comfyui-frontend-package, served by
the `comfy` server) in headless Chromium: every node type is known to the page, no "missing nodes"
warning appears, and what the page would queue is the workflow's API version.

Needs the ``playwright`` Python package and a Chromium binary (``/usr/bin/chromium`` from apt, or
``$GFP_CHROMIUM``); ``playwright install`` is never needed. Screenshots go to ``$GFP_TEST_ARTIFACTS``
(else pytest's temp folder). With ``GFP_WRITE_THUMBNAILS=1`` the test also rewrites the committed
thumbnails ``example_workflows/X.png`` (the graph as the canvas draws it).
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from comfy_server import input_spec
from helpers import distinct_workflows

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
#: the UI examples, and the same as saved with the classic node definitions (tests/data/saved_workflows):
#: both must load; a saved copy still equal to its example is loaded once
EXAMPLES = sorted((ROOT / "example_workflows").glob("*.json"))
SAVED = sorted(p for p in (ROOT / "tests" / "data" / "saved_workflows").glob("*.json")
               if not p.name.endswith("_api.json"))


UI_WORKFLOWS = distinct_workflows(SAVED + EXAMPLES)


def api_version(path: Path) -> Path:
    """X_api.json for the UI workflow X.json: example_workflows/api/, or beside a saved copy."""
    folder = path.parent / "api" if path.parent.name == "example_workflows" else path.parent
    return folder / f"{path.stem}_api.json"


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"
THUMBNAIL_WIDTH = 1024

#: the node types of each loaded graph that the page does not know, and any warning dialog's text
CHECK_JS = """() => {
    const nodes = window.app.graph._nodes || window.app.graph.nodes || [];
    const registered = window.LiteGraph.registered_node_types;
    const unknown = nodes.filter(n => !(n.type in registered) || n.has_errors).map(n => n.type);
    const dialogs = [...document.querySelectorAll('.p-dialog, [role=dialog], .comfy-modal')]
        .filter(d => d.offsetParent !== null || getComputedStyle(d).display !== 'none')
        .map(d => d.innerText);
    return {count: nodes.length, types: nodes.map(n => n.type), unknown, dialogs};
}"""


#: what the page would queue for the loaded graph (the API format)
PROMPT_JS = "async () => (await window.app.graphToPrompt()).output"


def missing_warning(dialogs: list[str]) -> list[str]:
    return [d for d in dialogs if "missing" in d.lower() or "unsupported" in d.lower()]


@pytest.fixture(scope="module")
def page(comfy, chromium):
    # a fresh user gets the templates browser on top of everything: mark the tour as done
    for key, value in (("Comfy.TutorialCompleted", True), ("Comfy.Workflow.ShowMissingNodesWarning", True)):
        comfy._http.post(f"{comfy.url}/settings/{key}", json=value, timeout=30).raise_for_status()
    pg = chromium.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(comfy.url, wait_until="domcontentloaded", timeout=60_000)
    pg.wait_for_function("() => window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                         " && Object.keys(window.LiteGraph.registered_node_types).length > 0",
                         timeout=90_000)
    # the pack's node definitions have reached the page
    pg.wait_for_function("() => 'GFPGANRestoreFaces' in window.LiteGraph.registered_node_types", timeout=30_000)
    pg.page_errors = errors
    yield pg
    pg.close()


def close_dialogs(page) -> None:
    for _ in range(3):
        page.keyboard.press("Escape")
    page.wait_for_timeout(200)


def load(page, workflow: dict) -> dict:
    close_dialogs(page)
    page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
    page.wait_for_timeout(1000)  # the warning dialog opens asynchronously after loading
    return page.evaluate(CHECK_JS)


def canvas_png(page, workflow: dict) -> bytes:
    """The graph as the canvas draws it, fitted to the view (no menus or side bars), in a window big
    enough that the canvas draws it at full detail (LiteGraph drops text when zoomed out)."""
    right = max(n["pos"][0] + n["size"][0] for n in workflow["nodes"])
    bottom = max(n["pos"][1] + n["size"][1] for n in workflow["nodes"])
    old = page.viewport_size
    page.set_viewport_size({"width": max(1200, int(right * 1.05) + 160), "height": max(700, int(bottom * 1.1) + 200)})
    try:
        return _draw_canvas(page)
    finally:
        page.set_viewport_size(old)


def _draw_canvas(page) -> bytes:
    url = page.evaluate("""async () => {
        const c = window.app.canvas;
        c.show_info = false;
        await new Promise(r => setTimeout(r, 300));
        try { await window.app.extensionManager.command.execute('Comfy.Canvas.FitView'); }
        catch (e) { if (c.fitViewToSelectionAnimated) c.fitViewToSelectionAnimated(); }
        await new Promise(r => setTimeout(r, 600));
        c.setDirty(true, true);
        c.draw(true, true);
        return c.canvas.toDataURL('image/png');
    }""")
    return base64.b64decode(url.split(",", 1)[1])


def test_an_unknown_node_type_is_detected(page):
    """The check below can fail: a workflow with a node type nobody registered is flagged."""
    bogus = json.loads(UI_WORKFLOWS[0].read_text()) if UI_WORKFLOWS else pytest.skip("no UI workflows")
    bogus["nodes"][0]["type"] = "NoSuchNodeTypeForGfpTest"
    state = load(page, bogus)
    assert "NoSuchNodeTypeForGfpTest" in state["unknown"], state
    assert any("NoSuchNodeTypeForGfpTest" in d for d in missing_warning(state["dialogs"])), state["dialogs"]
    close_dialogs(page)
    assert not missing_warning(page.evaluate(CHECK_JS)["dialogs"]), "the warning did not close"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_id)
def test_ui_workflow_loads_without_missing_nodes(page, artifacts, path):
    workflow = json.loads(path.read_text())
    state = load(page, workflow)
    page.screenshot(path=str(artifacts / f"{path.stem}.png"))

    assert state["count"] == len(workflow["nodes"]), state
    assert sorted(state["types"]) == sorted(n["type"] for n in workflow["nodes"])
    assert not state["unknown"], f"node types the page does not know: {state['unknown']}"
    assert not missing_warning(state["dialogs"]), state["dialogs"]
    text = page.evaluate("() => document.body.innerText").lower()
    assert "this workflow has missing nodes" not in text and "unsupported nodes" not in text

    thumb = canvas_png(page, workflow)
    (artifacts / f"{path.stem}_canvas.png").write_bytes(thumb)
    if os.environ.get("GFP_WRITE_THUMBNAILS") == "1" and path.parent.name == "example_workflows":
        import numpy as np
        from PIL import Image

        img = Image.open(io.BytesIO(thumb)).convert("RGB")
        ys, xs = np.nonzero(np.asarray(img).max(axis=-1) > 40)  # nodes and links, not the dark grid
        if len(xs):
            pad = 40
            img = img.crop((max(0, xs.min() - pad), max(0, ys.min() - pad),
                            min(img.width, xs.max() + pad), min(img.height, ys.max() + pad)))
        if img.width > THUMBNAIL_WIDTH:
            img = img.resize((THUMBNAIL_WIDTH, round(img.height * THUMBNAIL_WIDTH / img.width)), Image.LANCZOS)
        img.save(path.with_suffix(".png"), optimize=True)


@pytest.mark.parametrize("path", [p for p in UI_WORKFLOWS if api_version(p).exists()], ids=_id)
def test_ui_workflow_queues_its_api_version(page, comfy, path):
    """The frontend turns X.json into X_api.json: the same nodes, links and values. Anything more is a
    widget at its default: an input the node gained after the workflow was saved meets an old
    workflow that way (the frontend fills the widget values it lacks with the defaults)."""
    api = json.loads(api_version(path).read_text())
    load(page, json.loads(path.read_text()))
    prompt = page.evaluate(PROMPT_JS)
    info = comfy.object_info()
    assert sorted(prompt) == sorted(api)
    for nid, item in api.items():
        queued = prompt[nid]
        assert queued["class_type"] == item["class_type"]
        for name, value in item["inputs"].items():
            assert queued["inputs"].get(name) == value, f"node {nid} {item['class_type']}.{name}"
        spec = input_spec(info[item["class_type"]])
        for name in set(queued["inputs"]) - set(item["inputs"]):
            kind, options = spec[name]
            listed = kind if isinstance(kind, list) else options.get("options", [None])
            default = options.get("default", listed[0])
            assert queued["inputs"][name] == default, f"node {nid} {item['class_type']}.{name}"
