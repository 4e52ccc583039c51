"""API-format workflow -> UI-format workflow (what the ComfyUI frontend saves and loads).

``to_ui(api_graph, object_info)`` builds the frontend's graph (nodes, links, widget values in the
order of each node's widget inputs) and lays the nodes out left to right by depth (longest path from
a source node), each column stacked top to bottom in the order of the API graph's ids.

Regenerate the UI workflows from the API ones with a running server (started here)::

    python tests/workflow_ui.py            # writes example_workflows/X.json for each api/X_api.json
    python tests/workflow_ui.py gfpgan_video   # only that one
"""
from __future__ import annotations

import json
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
COLUMN_GAP = 80
ROW_GAP = 60
NODE_WIDTH = 320
TITLE_H = 30
SLOT_H = 22  # height of one input/output row or one widget row (LiteGraph's NODE_SLOT_HEIGHT ~ 20)
IMAGE_NODE_H = 320  # LoadImage / SaveImage (and the video ones) show a preview


def _ordered_inputs(info: dict) -> list[tuple[str, object, dict]]:
    """Inputs of an /object_info entry as (name, type, options), in the node's declared order."""
    inputs = info.get("input", {})
    order = info.get("input_order") or {s: list(inputs.get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is None:
                continue
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((name, kind, options))
    return out


def _is_widget(kind, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _type_name(kind) -> str:
    return "COMBO" if isinstance(kind, list) else str(kind)


def _depths(graph: dict) -> dict[str, int]:
    """Longest distance from a node without linked inputs."""
    depth: dict[str, int] = {}

    def visit(nid: str, stack: tuple = ()) -> int:
        if nid in depth:
            return depth[nid]
        if nid in stack:
            raise ValueError(f"the graph has a cycle through node {nid}")
        parents = [v[0] for v in graph[nid]["inputs"].values() if _is_link(v)]
        depth[nid] = 1 + max((visit(str(p), stack + (nid,)) for p in parents), default=-1)
        return depth[nid]

    for nid in graph:
        visit(nid)
    return depth


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
        and isinstance(value[1], int)


def _node_height(class_type: str, n_slots: int, n_widgets: int) -> int:
    h = TITLE_H + SLOT_H * (n_slots + n_widgets) + 10
    if class_type in ("LoadImage", "SaveImage", "PreviewImage", "LoadVideo", "SaveVideo"):
        h = max(h, IMAGE_NODE_H)
    return h


def _sort_key(nid: str):
    return (0, int(nid), "") if str(nid).isdigit() else (1, 0, str(nid))


def to_ui(graph: dict, object_info: dict) -> dict:
    """The UI-format workflow for an API-format graph (``{id: {"class_type", "inputs"}}``).

    Node ids must be integers (as strings) or are renumbered 1..n in sorted order."""
    ids = sorted(graph, key=_sort_key)
    numeric = {nid: int(nid) if str(nid).isdigit() else None for nid in ids}
    if any(v is None for v in numeric.values()):
        numeric = {nid: i + 1 for i, nid in enumerate(ids)}

    nodes: dict[str, dict] = {}
    links: list[list] = []
    for nid in ids:
        item = graph[nid]
        class_type = item["class_type"]
        if class_type not in object_info:
            raise KeyError(f"node {nid}: the server has no node class {class_type!r}")
        info = object_info[class_type]
        slot_inputs, widgets = [], []
        for name, kind, options in _ordered_inputs(info):
            value = item["inputs"].get(name)
            widget = _is_widget(kind, options)
            if _is_link(value):
                slot = {"name": name, "type": _type_name(kind), "link": None, "_src": value}
                if widget:  # a widget fed by a link (fps from Get Video Components) keeps its value too
                    slot["widget"] = {"name": name}
                slot_inputs.append(slot)
            elif not widget and name in item["inputs"]:
                raise ValueError(f"node {nid}.{name}: {value!r} is neither a link nor a widget value")
            elif not widget:
                slot_inputs.append({"name": name, "type": _type_name(kind), "link": None})
            if widget:  # the frontend matches widgets_values to the widgets by position: one each
                if value is None or _is_link(value):
                    listed = kind if isinstance(kind, list) else options.get("options") or [None]
                    value = options.get("default", listed[0])
                widgets.append(value)
                if options.get("control_after_generate"):
                    widgets.append("fixed")
                if options.get("image_upload") or options.get("video_upload"):
                    widgets.append("image")  # Load Image's / Load Video's upload button is a widget with a value
        outputs = [{"name": (info.get("output_name") or info["output"])[i], "type": t, "links": [],
                    "slot_index": i} for i, t in enumerate(info.get("output", []))]
        nodes[nid] = {"id": numeric[nid], "type": class_type, "pos": [0, 0], "size": [NODE_WIDTH, 0],
                      "flags": {}, "order": 0, "mode": 0, "inputs": slot_inputs, "outputs": outputs,
                      "properties": {"Node name for S&R": class_type}, "widgets_values": widgets}

    link_id = 0
    for nid in ids:
        for slot, inp in enumerate(nodes[nid]["inputs"]):
            src = inp.pop("_src", None)
            if src is None:
                continue
            src_id, src_slot = str(src[0]), src[1]
            source = nodes[src_id]
            link_id += 1
            kind = source["outputs"][src_slot]["type"]
            links.append([link_id, source["id"], src_slot, nodes[nid]["id"], slot, kind])
            inp["link"] = link_id
            source["outputs"][src_slot]["links"].append(link_id)

    # execution order: by depth, then id (what the frontend recomputes on load anyway)
    depth = _depths(graph)
    for order, nid in enumerate(sorted(ids, key=lambda n: (depth[n], _sort_key(n)))):
        nodes[nid]["order"] = order

    # layout: one column per depth, nodes stacked in id order, columns vertically centred
    columns: dict[int, list[str]] = {}
    for nid in ids:
        columns.setdefault(depth[nid], []).append(nid)
    heights = {}
    for nid, n in nodes.items():
        heights[nid] = _node_height(n["type"], max(len(n["inputs"]), len(n["outputs"])), len(n["widgets_values"]))
    col_h = {d: sum(heights[n] for n in col) + ROW_GAP * (len(col) - 1) for d, col in columns.items()}
    tallest = max(col_h.values(), default=0)
    x = 50
    for d in sorted(columns):
        y = 50 + (tallest - col_h[d]) // 2
        for nid in columns[d]:
            nodes[nid]["pos"] = [x, y]
            nodes[nid]["size"] = [NODE_WIDTH, heights[nid]]
            y += heights[nid] + ROW_GAP
        x += NODE_WIDTH + COLUMN_GAP

    return {"last_node_id": max((n["id"] for n in nodes.values()), default=0), "last_link_id": link_id,
            "nodes": [nodes[nid] for nid in ids], "links": links, "groups": [], "config": {}, "extra": {},
            "version": 0.4}


def write_ui_workflows(object_info: dict, folder: Path, names: list[str] | None = None) -> list[Path]:
    """``folder/X.json`` (UI format) for each ``folder/api/X_api.json`` (or only for the ``names`` X given):
    the template browser lists ``folder/*.json``, the API versions stay out of it."""
    written = []
    for api in sorted((Path(folder) / "api").glob("*_api.json")):
        if names and api.name[: -len("_api.json")] not in names:
            continue
        ui = to_ui(json.loads(api.read_text()), object_info)
        out = Path(folder) / (api.name[: -len("_api.json")] + ".json")
        out.write_text(json.dumps(ui, indent=2) + "\n")
        written.append(out)
    return written


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from comfy_server import start_server

    with tempfile.TemporaryDirectory(prefix="gfp-comfy-") as tmp:
        server = start_server(Path(tmp))
        try:
            info = server.object_info()
        finally:
            server.stop()
    for path in write_ui_workflows(info, Path(__file__).resolve().parents[1] / "example_workflows", sys.argv[1:]):
        print(path)
