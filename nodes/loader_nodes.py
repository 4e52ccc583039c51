"""The loader nodes in ComfyUI's schema API: Load GFPGAN Model, Load Face Detector, Load Face Parser."""
from __future__ import annotations

from comfy_api.latest import io

from . import host, loaders
from .sockets import CATEGORY, FaceDetector, FaceParser, GFPGANModel, device_input


class GFPGANModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices, default = loaders.restorer_choices()
        return io.Schema(
            node_id="GFPGANModelLoader", display_name="Load GFPGAN Model", category=CATEGORY,
            description="Load a GFPGAN model: a file in models/facerestore_models, or a known version "
                        "(GFPGANv1.4, v1.3, v1.2, v1) from the Hugging Face cache or a verified download. "
                        "ComfyUI's model management moves it to the GPU when a node needs it.",
            inputs=[
                io.Combo.Input("model_name", options=choices, default=default,
                               tooltip="a file in models/facerestore_models, or a known GFPGAN version"),
                device_input(),
                io.Combo.Input("dtype", options=loaders.DTYPES, default="fp32",
                               tooltip="fp32 = the published numerics; bf16 (CPU or GPU) and fp16 (GPU only) "
                                       "halve the memory"),
                # optional and last: a workflow saved before it existed loads with the default
                io.Combo.Input("backend", options=loaders.BACKENDS, default="auto", optional=True,
                               tooltip="what runs GFPGAN: auto = OpenVINO on the CPU when installed and measured "
                                       "faster, else PyTorch; openvino runs on the CPU only"),
            ],
            outputs=[GFPGANModel.Output(display_name="model", tooltip="the restorer, for the restore nodes")],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name: str, device: str, dtype: str, backend: str = "auto") -> str:
        return loaders.file_fingerprint(host.RESTORE_FOLDER, model_name)  # a replaced file is loaded again

    @classmethod
    def execute(cls, model_name: str, device: str, dtype: str, backend: str = "auto") -> io.NodeOutput:
        return io.NodeOutput(loaders.load_restorer(model_name, device, dtype, backend))


class GFPGANFaceDetectorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GFPGANFaceDetectorLoader", display_name="Load Face Detector", category=CATEGORY,
            description="Load a face detector: RetinaFace ResNet-50 (GFPGAN's own, most accurate) or "
                        "MobileNet-0.25 (fast), weights from models/facedetection or the Hub, or the embedded "
                        "detector that ships with the pack and needs no download.",
            inputs=[
                io.Combo.Input("detector", options=loaders.DETECTORS, default="retinaface_resnet50",
                               tooltip="retinaface_resnet50, retinaface_mobile0.25 (weights in "
                                       "models/facedetection) or embedded (no download, runs on the CPU)"),
                device_input(),
            ],
            outputs=[FaceDetector.Output(display_name="detector", tooltip="for Detect Faces and GFPGAN Restore Faces")],
        )

    @classmethod
    def execute(cls, detector: str, device: str) -> io.NodeOutput:
        return io.NodeOutput(loaders.load_face_detector(detector, device))


class GFPGANFaceParserLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        choices, default = loaders.parser_choices()
        return io.Schema(
            node_id="GFPGANFaceParserLoader", display_name="Load Face Parser", category=CATEGORY,
            description="Load a face-parsing network for mask = parsing: ParseNet (the official choice) or "
                        "BiSeNet, from models/facerestore_models under its release name (parsing_parsenet.pth, "
                        "parsing_bisenet.pth) or by name from the Hugging Face cache or a verified download.",
            inputs=[
                io.Combo.Input("parser_name", options=choices, default=default,
                               tooltip="a parser file in models/facerestore_models, or parsenet / bisenet"),
                device_input(),
            ],
            outputs=[FaceParser.Output(display_name="parser", tooltip="for Paste Faces and GFPGAN Restore Faces "
                                                                      "with mask = parsing")],
        )

    @classmethod
    def fingerprint_inputs(cls, parser_name: str, device: str) -> str:
        return loaders.file_fingerprint(host.RESTORE_FOLDER, parser_name)

    @classmethod
    def execute(cls, parser_name: str, device: str) -> io.NodeOutput:
        return io.NodeOutput(loaders.load_face_parser(parser_name, device))


LOADER_NODES: list[type[io.ComfyNode]] = [GFPGANModelLoader, GFPGANFaceDetectorLoader, GFPGANFaceParserLoader]
