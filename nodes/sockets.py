"""The pack's socket types and the inputs several nodes share, in ComfyUI's schema API.

Input names, order, types, defaults and ranges are what saved workflows hold: the frontend gives a
saved workflow's widget values to the widgets by position, and a saved prompt names its inputs. Only
add new inputs as optional ones after every older widget.
"""
from __future__ import annotations

from comfy_api.latest import io

from gfp_core import options
from gfp_core.face.masks import MASK_MODES
from gfp_core.face.select import SELECTIONS

#: the pack's own socket types (what flows between its nodes)
GFPGANModel = io.Custom("GFPGAN_MODEL")
FaceDetector = io.Custom("FACE_DETECTOR")
FaceParser = io.Custom("FACE_PARSER")
Faces = io.Custom("FACES")

CATEGORY = "GFPGAN"
MASK_CHOICES = list(MASK_MODES)
#: the background choices besides a wired UPSCALE_MODEL: Lanczos, or a registry network
BACKGROUND_CHOICES = list(options.BACKGROUNDS.names)

THRESHOLD_TIP = "face probability a detection needs; 0 = the detector's default (0.97 ResNet-50, 0.9 MobileNet)"
MIN_SIZE_TIP = "ignore faces smaller than this many pixels"
FEATHER_TIP = "extra softening of the mask edge"


def image_input(tooltip: str) -> io.Image.Input:
    return io.Image.Input("image", tooltip=tooltip)


def select_inputs() -> list[io.Input]:
    """select, indices, max_faces: which faces to restore."""
    return [
        io.Combo.Input("select", options=list(SELECTIONS), default="all",
                       tooltip="which faces: all, the largest, the one nearest the centre, or by number (indices); "
                               "faces are numbered left to right; with smoothing, a video's faces by person, "
                               "in order of appearance"),
        io.String.Input("indices", default="0", tooltip="for select = indices: e.g. 0,2 (0 = leftmost face)"),
        io.Int.Input("max_faces", default=0, min=0, max=64,
                     tooltip="restore at most this many faces per frame (the largest); 0 = no limit"),
    ]


def clip_inputs() -> list[io.Input]:
    """smoothing, fps: optional, for video frames. The widget suggests 0.5 for a new node; a saved
    prompt without them runs as before (each frame on its own): the functions default to 0."""
    return [
        io.Float.Input("smoothing", default=0.5, min=0.0, max=1.0, step=0.05, optional=True,
                       tooltip="for video frames: faces are followed from frame to frame, so 'face 0' is the same "
                               "person in every frame, and their alignment is steadied; 0 = every frame on its own "
                               "(use 0 for a batch of separate pictures)"),
        io.Float.Input("fps", default=30.0, min=1.0, max=1000.0, step=0.01, optional=True,
                       tooltip="the frames' rate, for smoothing: wire it from Get Video Components' fps"),
    ]


def steady_input() -> io.Float.Input:
    """steady: optional, for video frames followed as a clip (smoothing above 0). The widget suggests 1
    for a new node; a saved prompt without it runs as before (0)."""
    return io.Float.Input("steady", default=1.0, min=0.0, max=1.0, step=0.05, optional=True,
                          tooltip="for video frames followed as a clip (smoothing above 0): while a face stands "
                                  "still, its restored face is blended with the frame before's, so it does not "
                                  "shimmer; a blink or a word still shows at once; 0 = off")


def paste_inputs() -> list[io.Input]:
    """parser, upscale_model, background, colour_match: optional inputs of the nodes that paste."""
    return [
        FaceParser.Input("parser", optional=True,
                         tooltip="for mask = parsing (Load Face Parser); default: ParseNet from "
                                 "models/facerestore_models"),
        io.UpscaleModel.Input("upscale_model", optional=True,
                              tooltip="the background network (core's Load Upscale Model), run in tiles; "
                                      "it runs even at upscale 1"),
        io.Combo.Input("background", options=BACKGROUND_CHOICES, default="lanczos", optional=True,
                       tooltip="without an upscale_model: Lanczos, or a Real-ESRGAN network from "
                               "models/facerestore_models"),
        io.Boolean.Input("colour_match", default=False, optional=True,
                         tooltip="match the restored faces' colours to the original faces"),
    ]


def fidelity_input() -> io.Float.Input:
    return io.Float.Input("fidelity", default=1.0, min=0.0, max=1.0, step=0.05,
                          tooltip="1 = the published model; lower values lean on the generative face prior "
                                  "(0 = the prior alone, cleaner but less like the person)")


def visibility_input(tooltip: str = "0 = the original face, 1 = the restored face") -> io.Float.Input:
    return io.Float.Input("visibility", default=1.0, min=0.0, max=1.0, step=0.05, tooltip=tooltip)


def mask_input() -> io.Combo.Input:
    return io.Combo.Input("mask", options=MASK_CHOICES, default="box",
                          tooltip="the paste-back blend: box (the official feathered square), ellipse (from the "
                                  "landmarks) or parsing (the face parser's skin, brows, eyes, nose and mouth)")


def upscale_input() -> io.Float.Input:
    return io.Float.Input("upscale", default=1.0, min=1.0, max=4.0, step=0.5,
                          tooltip="output size factor; the background is resized with Lanczos or the "
                                  "background network")


def device_input() -> io.Combo.Input:
    from .loaders import DEVICES

    return io.Combo.Input("device", options=DEVICES, default="auto",
                          tooltip="where it runs: auto = ComfyUI's device (its model management loads and "
                                  "offloads it)")
