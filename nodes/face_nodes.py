"""The face nodes in ComfyUI's schema API: Detect Faces → Crop Faces → Restore Faces → Paste Faces,
and GFPGAN Restore Faces (all of it in one node). The work is in :mod:`nodes.faces`."""
from __future__ import annotations

from comfy_api.latest import io

from gfp_core.errors import GFPError
from gfp_core.face.select import SELECTIONS, parse_indices

from . import faces as work  # (a node input is called faces)
from .sockets import (CATEGORY, FEATHER_TIP, MIN_SIZE_TIP, THRESHOLD_TIP, FaceDetector, Faces, GFPGANModel,
                      clip_inputs, fidelity_input, image_input, mask_input, paste_inputs, select_inputs,
                      steady_input, upscale_input, visibility_input)


def _output(outputs: tuple, notes: list[str]) -> io.NodeOutput:
    """The node's outputs, with the engine's notes shown under the node."""
    return io.NodeOutput(*outputs, ui={"text": notes} if notes else None)


def _check_selection(select: str, indices: str) -> bool | str:
    """Before the prompt runs: a face choice that cannot work is reported on the node (a linked
    input has no value yet: it is checked when the node runs)."""
    if select is None:
        return True
    if select not in SELECTIONS:
        return f"select must be one of {', '.join(SELECTIONS)}, got {select!r}"
    if select == "indices" and isinstance(indices, str):
        try:
            parse_indices(indices)
        except GFPError as exc:
            return str(exc)
    return True


class GFPGANDetectFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANDetectFaces", display_name="Detect Faces", category=CATEGORY,
            description="Find the faces in every frame and choose which to restore. The preview shows their "
                        "numbers (with smoothing, a video's faces keep theirs from frame to frame); the mask "
                        "covers the chosen faces.",
            inputs=[
                image_input("a picture or a batch of frames"),
                FaceDetector.Input("detector", tooltip="from Load Face Detector"),
                io.Float.Input("threshold", default=0.0, min=0.0, max=1.0, step=0.01, tooltip=THRESHOLD_TIP),
                *select_inputs(),
                io.Int.Input("min_size", default=0, min=0, max=4096, tooltip=MIN_SIZE_TIP),
                *clip_inputs(),
            ],
            outputs=[
                Faces.Output(display_name="faces", tooltip="the chosen faces and their alignment, for Crop Faces "
                                                           "and Paste Faces"),
                io.Mask.Output(display_name="mask", tooltip="where the chosen faces are"),
                io.Image.Output(display_name="preview", tooltip="every face found, boxed and numbered"),
            ],
        )

    @classmethod
    def validate_inputs(cls, select: str, indices: str) -> bool | str:
        return _check_selection(select, indices)

    @classmethod
    def execute(cls, image, detector, threshold, select, indices, max_faces, min_size, smoothing=0.0,
                fps=30.0) -> io.NodeOutput:
        return _output(*work.detect(image, detector, threshold, select, indices, max_faces, min_size, smoothing, fps))


class GFPGANCropFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANCropFaces", display_name="Crop Faces", category=CATEGORY,
            description="Cut out the chosen faces as aligned 512×512 crops (the FFHQ alignment the models "
                        "expect), frame after frame, as one IMAGE batch.",
            inputs=[
                image_input("the frames the faces were found in"),
                Faces.Input("faces", tooltip="from Detect Faces"),
            ],
            outputs=[io.Image.Output(display_name="crops", tooltip="one aligned crop per chosen face")],
        )

    @classmethod
    def execute(cls, image, faces: object) -> io.NodeOutput:
        return _output(*work.crop(image, faces))


class GFPGANRestoreCrops(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANRestoreCrops", display_name="Restore Faces", category=CATEGORY,
            description="Restore aligned face crops with a GFPGAN model. Fidelity 1 = the published model, "
                        "0 = the generative face prior alone. Batches are halved when the GPU runs out of memory.",
            inputs=[
                GFPGANModel.Input("model", tooltip="from Load GFPGAN Model"),
                io.Image.Input("crops", tooltip="aligned face crops (Crop Faces); other sizes are resized"),
                fidelity_input(),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="faces per forward pass (1 is fastest on a CPU; halved on out-of-memory)"),
            ],
            outputs=[io.Image.Output(display_name="restored_crops", tooltip="the restored crops, in the same order")],
        )

    @classmethod
    def execute(cls, model, crops, fidelity, batch_size) -> io.NodeOutput:
        return _output(*work.restore(model, crops, fidelity, batch_size))


class GFPGANPasteFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANPasteFaces", display_name="Paste Faces", category=CATEGORY,
            description="Paste crops (restored, or edited by any other nodes) back into their frames, "
                        "blended with the chosen mask; pixels away from the faces are left as they were.",
            inputs=[
                image_input("the frames the faces were found in"),
                Faces.Input("faces", tooltip="from Detect Faces"),
                io.Image.Input("crops", tooltip="one crop per face, in Crop Faces' order (resized if needed)"),
                mask_input(),
                io.Float.Input("feather", default=0.0, min=0.0, max=1.0, step=0.05, tooltip=FEATHER_TIP),
                visibility_input("0 = the original face, 1 = the pasted face"),
                upscale_input(),
                *paste_inputs(),
                steady_input(),  # last: a saved workflow's widget values are matched by position
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="the frames with the faces pasted in"),
                io.Mask.Output(display_name="mask", tooltip="how much of each pixel is a pasted face"),
            ],
        )

    @classmethod
    def execute(cls, image, faces: object, crops, mask, feather, visibility, upscale, parser=None,
                upscale_model=None, background="lanczos", colour_match=False, steady=0.0) -> io.NodeOutput:
        return _output(*work.paste(image, faces, crops, mask, feather, visibility, upscale, parser, upscale_model,
                                   background, colour_match, steady))


class GFPGANRestoreFaces(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANRestoreFaces", display_name="GFPGAN Restore Faces", category=CATEGORY,
            description="Detect, restore and paste back every chosen face in one node. With smoothing, a batch "
                        "of video frames is restored as a clip: faces are followed and steadied from frame to "
                        "frame, and with steady the restored faces do not shimmer while they stand still.",
            inputs=[
                image_input("a picture or a batch of frames (float frames stay float)"),
                GFPGANModel.Input("model", tooltip="from Load GFPGAN Model"),
                fidelity_input(),
                visibility_input(),
                mask_input(),
                *select_inputs(),
                upscale_input(),
                FaceDetector.Input("detector", optional=True,
                                   tooltip="default: RetinaFace ResNet-50 from models/facedetection, or the "
                                           "embedded detector when its weights cannot be had"),
                *paste_inputs(),
                io.Float.Input("threshold", default=0.0, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip=THRESHOLD_TIP),
                io.Int.Input("min_size", default=0, min=0, max=4096, optional=True, tooltip=MIN_SIZE_TIP),
                io.Float.Input("feather", default=0.0, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip=FEATHER_TIP),
                *clip_inputs(),  # last: a saved workflow's widget values are matched by position
                steady_input(),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="the frames with the faces restored"),
                io.Mask.Output(display_name="mask", tooltip="how much of each pixel is a restored face"),
                io.Image.Output(display_name="restored_crops", tooltip="the restored aligned crops"),
            ],
        )

    @classmethod
    def validate_inputs(cls, select: str, indices: str) -> bool | str:
        return _check_selection(select, indices)

    @classmethod
    def execute(cls, image, model, fidelity, visibility, mask, select, indices, max_faces, upscale, **optional
                ) -> io.NodeOutput:
        return _output(*work.restore_faces(image, model, fidelity, visibility, mask, select, indices, max_faces,
                                            upscale, **optional))


FACE_NODES: list[type[io.ComfyNode]] = [GFPGANDetectFaces, GFPGANCropFaces, GFPGANRestoreCrops, GFPGANPasteFaces,
                                        GFPGANRestoreFaces]
