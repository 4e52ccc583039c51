"""What visitors are told: a result's summary, and why a request was refused or failed (short, the
upload called by its own name, no server folder; the server log keeps the whole story)."""
from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import gradio as gr

from gfp_core import options
from gfp_core.errors import GFPError, WeightsNotFoundError

from .engine import MESSAGE_WORDS, ClipOutcome, RestoreOutcome, one_line
from .models import model_title

log = logging.getLogger("web")

MESSAGE_CHARS = 240       # the longest message a visitor is shown
TOAST_SECONDS = 8         # error messages fade instead of staying over the page
FAILED = "The restore failed on the server (the error was logged). Try again, or other settings."

_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?[\\/](?:[^\s\\/'\"(),;]+[\\/])+[^\s\\/'\"(),;]*")
_QUOTED = re.compile(r"(['\"])([^'\"]{40})[^'\"]+\1")


def summary_text(outcome: RestoreOutcome | ClipOutcome, model: str) -> str:
    """A result's summary line, its notes and what the weights are, as Markdown."""
    notes = outcome.notes + ([outcome.weights_note] if outcome.weights_note else [])
    runtime = "OpenVINO" if outcome.backend == "openvino" else "PyTorch"
    lines = [f"**{outcome.summary}** with {model_title(model)} on {runtime}."] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def visitor_message(exc: GFPError, path: Path | None = None, name: str = "") -> str:
    """A user error as a visitor sees it: short, the upload called by its name, no server folder
    named and no long input repeated (the server log has the whole message)."""
    text = str(exc)
    if path is not None:
        text = text.replace(str(path), name)
    if isinstance(exc, WeightsNotFoundError):  # the rest lists the server's model folders
        text = text.split("\n")[0].split(" Put ")[0].rstrip(":") + " The server's administrator can add them."
    text = _PATH.sub(lambda m: _file_name(m.group(0)), " ".join(text.split()))
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}…{m.group(1)}", text)
    text = html.escape(text, quote=False)  # Gradio shows messages as HTML
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _file_name(path: str) -> str:
    """A server path in a message: a file keeps its name, a folder becomes 'a server folder'."""
    last = re.split(r"[\\/]", path.rstrip("\\/"))[-1]
    return last if "." in last.strip(".") else "a server folder"


def refuse(what: str, exc: Exception, path: Path | None, name: str) -> gr.Error:
    """The page's error for ``exc``, logged: user errors in one line, anything else with its traceback."""
    if isinstance(exc, GFPError):
        options.in_words(exc, MESSAGE_WORDS)  # a refused option is named by its control
        log.warning("%s refused (%s): %s", what, name or "no upload", one_line(str(exc)))
        return gr.Error(visitor_message(exc, path, name), duration=TOAST_SECONDS, print_exception=False)
    log.error("%s of %s failed", what, name or "no upload", exc_info=exc)
    return gr.Error(f"{FAILED} ({type(exc).__name__})", duration=TOAST_SECONDS, print_exception=False)
