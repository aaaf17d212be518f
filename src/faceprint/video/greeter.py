"""Greet recognised people by name: spoken with espeak-ng/espeak when installed, else printed.

The seed's greeting ("Welcome skuli, have a nice day!") once per arrival; a per-person cooldown
keeps someone who steps out of view and back from being welcomed again and again.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Callable

from .events import Event

__all__ = ["Greeter", "find_speech_engine"]


def find_speech_engine() -> str | None:
    """Path of an installed text-to-speech command (espeak-ng, then espeak), or None."""
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Greeter:
    """Say ``template`` for each "recognised" event of a known person, at most once per ``cooldown``.

    cooldown: seconds of video time before the same person is greeted again.
    speak: use a speech engine when one is installed (False: always print).
    say: where printed greetings go (default print).
    """

    def __init__(
        self,
        *,
        cooldown: float = 60.0,
        template: str = "Welcome {name}, have a nice day!",
        speak: bool = True,
        say: Callable[[str], None] = print,
    ) -> None:
        self.cooldown, self.template, self._say = cooldown, template, say
        self.engine = find_speech_engine() if speak else None
        self._last: dict[str, float] = {}
        self.greeted: list[tuple[float, str]] = []  # (video time, text)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._voice: threading.Thread | None = None

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
        if self._voice is None:
            # One speaker thread: the video keeps running, and two greetings never talk over each other.
            self._voice = threading.Thread(target=self._speak_queue, name="faceprint-greeter", daemon=True)
            self._voice.start()
        self._queue.put(text)
        return text

    def _speak_queue(self) -> None:
        while (text := self._queue.get()) is not None:
            try:
                subprocess.run([self.engine, text], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._say(text)  # the engine broke: the greeting is still not lost

    def close(self) -> None:
        """Let the greetings still queued be spoken (at most ~30 s each), then stop the speaker."""
        if self._voice is not None:
            self._queue.put(None)
            self._voice.join()
            self._voice = None
