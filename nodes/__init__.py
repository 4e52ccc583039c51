"""ComfyUI nodes: thin adapters that convert IMAGE/MASK tensors and call gfp_core stages."""
from . import host
from .faces import GFPGANCropFaces, GFPGANDetectFaces, GFPGANPasteFaces, GFPGANRestoreCrops, GFPGANRestoreFaces
from .loaders import GFPGANFaceDetectorLoader, GFPGANFaceParserLoader, GFPGANModelLoader

host.register_model_folders()

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "GFPGANModelLoader": GFPGANModelLoader,
    "GFPGANFaceDetectorLoader": GFPGANFaceDetectorLoader,
    "GFPGANFaceParserLoader": GFPGANFaceParserLoader,
    "GFPGANDetectFaces": GFPGANDetectFaces,
    "GFPGANCropFaces": GFPGANCropFaces,
    "GFPGANRestoreCrops": GFPGANRestoreCrops,
    "GFPGANPasteFaces": GFPGANPasteFaces,
    "GFPGANRestoreFaces": GFPGANRestoreFaces,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "GFPGANModelLoader": "Load GFPGAN Model",
    "GFPGANFaceDetectorLoader": "Load Face Detector",
    "GFPGANFaceParserLoader": "Load Face Parser",
    "GFPGANDetectFaces": "Detect Faces",
    "GFPGANCropFaces": "Crop Faces",
    "GFPGANRestoreCrops": "Restore Faces",
    "GFPGANPasteFaces": "Paste Faces",
    "GFPGANRestoreFaces": "GFPGAN Restore Faces",
}
