"""What the nodes need from ComfyUI: model folders, the device, progress and interruption.

Imported lazily so that the pack (and its tests) also import outside ComfyUI.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

#: ComfyUI model folders this pack registers (subfolders of ComfyUI's models directory)
RESTORE_FOLDER = "facerestore_models"
DETECTION_FOLDER = "facedetection"


def register_model_folders() -> None:
    """Register our folders with ComfyUI and make gfp_core search them for registry files."""
    from gfp_core.weights import add_model_dir

    try:
        import folder_paths
    except ImportError:
        return
    kinds = {RESTORE_FOLDER: ("restoration", "parsing", "background"), DETECTION_FOLDER: ("detection",)}
    for name, folder_kinds in kinds.items():
        path = os.path.join(folder_paths.models_dir, name)
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, path)
        for folder in folder_paths.get_folder_paths(name):
            add_model_dir(folder, kinds=folder_kinds)


def model_files(folder: str) -> list[str]:
    try:
        import folder_paths
    except ImportError:
        return []
    return folder_paths.get_filename_list(folder)


def model_file_path(folder: str, name: str) -> str | None:
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths.get_full_path(folder, name)


def device(choice: str) -> torch.device | str:
    """'auto' is ComfyUI's device when running inside ComfyUI."""
    if choice != "auto":
        return choice
    try:
        import comfy.model_management as mm
    except ImportError:
        return "auto"
    return mm.get_torch_device()


def progress(total: int) -> Callable[[int], None]:
    """A callback that advances ComfyUI's progress bar and stops when the user interrupts."""
    try:
        import comfy.model_management as mm
        import comfy.utils
    except ImportError:
        return lambda n: None
    bar = comfy.utils.ProgressBar(max(total, 1))

    def step(n: int) -> None:
        bar.update(n)
        mm.throw_exception_if_processing_interrupted()
    return step


def check_interrupt() -> None:
    try:
        import comfy.model_management as mm
    except ImportError:
        return
    mm.throw_exception_if_processing_interrupted()
