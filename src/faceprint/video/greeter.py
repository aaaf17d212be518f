"""Greet recognised people by name: spoken with espeak-ng/espeak when installed, else printed;
or written as WAV files (one per greeting) for a device that plays them elsewhere.

The seed's greeting ("Welcome skuli, have a nice day!") once per arrival; a per-person cooldown
keeps someone who steps out of view and back from being welcomed again and again. The text is a
template with ``{name}``.
"""

from __future__ import annotations

import logging
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from string import Formatter

from ..errors import VideoError
from .events import Event

__all__ = ["DEFAULT_TEMPLATE", "Greeter", "check_template", "find_speech_engine"]

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Welcome {name}, have a nice day!"


def check_template(template: str) -> str:
    """A greeting template that names the person with ``{name}`` and nothing else; ValueError
    (saying how to write it) otherwise."""
    try:
        fields = {f for _, f, _, _ in Formatter().parse(template) if f is not None}
        template.format(name="x")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"greeting template {template!r} cannot be filled ({type(exc).__name__}: {exc}): write the name as "
            "{name} and double other braces ({{ }})"
        ) from None
    if fields != {"name"}:
        raise ValueError(f"greeting template {template!r} must say the name as {{name}}, and nothing else in braces")
    return template


def find_speech_engine() -> str | None:
    """Path of an installed text-to-speech command (espeak-ng, then espeak), or None."""
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Greeter:
    """Say ``template`` for each "recognised" event of a known person, at most once per ``cooldown``.

    cooldown: seconds of video time (the events' own times) before the same person is greeted again.
    template: the text, with ``{name}`` for the person (:func:`check_template`).
    speak: use a speech engine when one is installed (False: always print).
    say: where printed greetings go (default print).
    to: write each greeting as a WAV file instead of playing it: ``to`` = ``hall.wav`` gives
        ``hall-0001.wav``, ``hall-0002.wav``, ... numbered on after the files already there (so a
        second run adds, never overwrites). Needs espeak-ng or espeak (VideoError without).
    """

    def __init__(
        self,
        *,
        cooldown: float = 60.0,
        template: str = DEFAULT_TEMPLATE,
        speak: bool = True,
        say: Callable[[str], None] = print,
        to: str | Path | None = None,
    ) -> None:
        self.cooldown, self.template, self._say = cooldown, check_template(template), say
        self.engine = find_speech_engine() if speak or to is not None else None
        self.to = None if to is None else Path(to)
        self._number = 0
        if self.to is not None:
            if self.engine is None:
                raise VideoError(
                    f"cannot write greetings to {self.to}: that needs espeak-ng (apt install espeak-ng) or espeak"
                )
            if not self.to.parent.is_dir():
                raise VideoError(f"cannot write greetings to {self.to}: folder {self.to.parent} does not exist")
            taken = re.compile(re.escape(self.to.stem) + r"-(\d+)" + re.escape(self.to.suffix or ".wav") + "$")
            found = (taken.match(p.name) for p in self.to.parent.iterdir())
            self._number = max((int(m.group(1)) for m in found if m), default=0)
        self._last: dict[str, float] = {}
        self.greeted: list[tuple[float, str]] = []  # (video time, text)
        self.files: list[Path] = []  # the WAV files greetings go to (``to``), in order
        self._queue: queue.Queue[tuple[str, Path | None] | None] = queue.Queue()
        self._voice: threading.Thread | None = None

    def wav_path(self, number: int) -> Path:
        """The file of the ``number``-th greeting (from 1) when writing them (``to``)."""
        if self.to is None:
            raise ValueError("this greeter speaks or prints; it writes no files (give to=...)")
        return self.to.with_name(f"{self.to.stem}-{number:04d}{self.to.suffix or '.wav'}")

    def __call__(self, event: Event) -> str | None:
        """Greet for this event if it calls for it; the text said, or None."""
        if event.kind != "recognised" or event.identity is None:
            return None
        last = self._last.get(event.identity)
        if last is not None and event.time - last < self.cooldown:
            return None
        self._last[event.identity] = event.time
        text = self.template.format(name=event.identity)
        self.greeted.append((event.time, text))
        if self.engine is None:
            self._say(text)
            return text
        wav = None
        if self.to is not None:
            self._number += 1
            wav = self.wav_path(self._number)
            self.files.append(wav)
        if self._voice is None:
            # One speaker thread: the video keeps running, and two greetings never talk over each other.
            self._voice = threading.Thread(target=self._speak_queue, name="faceprint-greeter", daemon=True)
            self._voice.start()
        self._queue.put((text, wav))
        return text

    def _speak_queue(self) -> None:
        while (item := self._queue.get()) is not None:
            text, wav = item
            # "--" ends the options: a name that starts with "-" is said, not taken as a flag
            cmd = [self.engine, *(["-w", str(wav)] if wav is not None else []), "--", text]
            try:
                done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
                if done.returncode != 0:
                    raise OSError(done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                if wav is not None:
                    log.warning("greeting %r not written to %s: %s", text, wav, exc)
                self._say(text)  # the engine broke: the greeting is still not lost

    def close(self) -> None:
        """Let the greetings still queued be spoken (at most ~30 s each), then stop the speaker."""
        if self._voice is not None:
            self._queue.put(None)
            self._voice.join()
            self._voice = None
