"""The Video tab: a short clip in; the clip with its faces restored out, playable in the page and
downloadable. Its button is also the API endpoint ``/restore_video``."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio.events import Dependency

from . import controls as c
from .accelerator import VIDEO_GPU_SECONDS, on_accelerator, video_job
from .engine import RestoreEngine, VideoOptions
from .messages import refuse, summary_text
from .uploads import uploaded_video
from .video_limits import VideoLimits, frame_size, megabytes

DEFAULTS = VideoOptions()


def limits_text(limits: VideoLimits) -> str:
    """What the page says a clip may be, so that nobody uploads a film to be refused."""
    return (f"Short clips: at most {limits.seconds:g} s, {limits.frames} frames, {frame_size(limits.pixels)} "
            f"pixels and {megabytes(limits.file_bytes)} MB. The sound is kept.")


def video_tab(engine: RestoreEngine, cache_dir: Path) -> Dependency:
    """Build the tab where the page is being built; ``cache_dir``: Gradio's upload folder, the only
    place clips are read from. Returns the restore event (for what follows a result)."""
    run_video = on_accelerator(video_job, VIDEO_GPU_SECONDS)

    def restore_video(clip, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                      background, smoothing, steady, progress=gr.Progress(track_tqdm=True)):
        """Restore the faces in a short video clip.

        Returns the restored clip (MP4, H.264, with the clip's sound), the same file for download, and
        a summary: frames, faces restored, frames without a face, notes."""
        path, name = None, ""
        try:
            path, name = uploaded_video(clip, cache_dir)
            options = c.make_video_options(model, fidelity, visibility, upscale, detector, threshold, faces,
                                           indices, mask, background, smoothing, steady)
            outcome = run_video(str(path), options)
        except Exception as exc:  # noqa: BLE001 (every failure becomes a short message; the log has it all)
            raise refuse("video", exc, path, name) from None
        return str(outcome.file), str(outcome.file), summary_text(outcome, options.model)

    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            clip = gr.Video(label="Clip", sources=["upload"], height=320, elem_id="clip")
            gr.Markdown(limits_text(engine.video_limits), elem_id="video-limits")
            model = c.model_control(DEFAULTS.model)
            with gr.Row():
                upscale = c.upscale_control(DEFAULTS.upscale, info="size of the result (1: as the clip)")
                fidelity = c.fidelity_control(DEFAULTS.fidelity)
            with gr.Row():
                smoothing = c.smoothing_control(DEFAULTS.smoothing)
                steady = c.steady_control(DEFAULTS.steady)
            button = gr.Button("Restore the video", variant="primary", elem_id="restore-video")
            with gr.Accordion("Advanced", open=False, elem_id="video-advanced"):
                with gr.Row():
                    visibility = c.visibility_control(DEFAULTS.visibility)
                    threshold = c.threshold_control(DEFAULTS.threshold)
                faces = c.faces_control(DEFAULTS.faces)
                with gr.Row():
                    indices = c.indices_control(DEFAULTS.indices,
                                                info="for 'Faces by number'; a face keeps its number all through")
                    detector = c.detector_control(DEFAULTS.detector)
                mask = c.mask_control(DEFAULTS.mask)
                background = c.background_control(DEFAULTS.background)
        with gr.Column(scale=2, min_width=320, elem_id="video-results"):
            result = gr.Video(label="Restored video", interactive=False, height=480, elem_id="video-result")
            summary = gr.Markdown(elem_id="video-summary")
            download = gr.File(label="Restored video file", interactive=False, elem_id="video-download")

    return button.click(
        restore_video, [clip, model, fidelity, visibility, upscale, detector, threshold, faces, indices, mask,
                        background, smoothing, steady],
        [result, download, summary], api_name="restore_video", preprocess=False, concurrency_id="restore")
