"""The greeting aloud (issue 13): a template, spoken by the real espeak-ng into WAV files (one per
greeting), at most once per person per cooldown of video time."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import VideoError
from faceprint.cli import app
from faceprint.video import Event, Greeter
from faceprint.video import greeter as greeter_module
from faceprint.video.greeter import check_template

needs_speech = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
    reason="espeak-ng is not installed (apt install espeak-ng): the spoken greeting cannot be checked",
)


def recognised(name: str | None, t: float, kind: str = "recognised") -> Event:
    return Event(kind, 1, t, int(t * 10), (0.0, 0.0, 10.0, 10.0), name, 0.4, True, 3)  # type: ignore[arg-type]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples as float in [-1, 1], mono; sample rate) of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, "espeak-ng writes 16-bit PCM"
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
        return pcm.mean(axis=1) / 32768.0, w.getframerate()


@needs_speech
def test_a_greeting_is_spoken_into_a_wav_file(tmp_path: Path) -> None:
    g = Greeter(to=tmp_path / "hello.wav", template="Welcome, {name}", say=lambda text: pytest.fail(f"printed {text!r}"))
    assert g(recognised("Tony Blair", 1.0)) == "Welcome, Tony Blair"
    g.close()  # waits for the speaker
    assert g.files == [tmp_path / "hello-0001.wav"] and sorted(tmp_path.iterdir()) == g.files
    audio, rate = read_wav(g.files[0])
    seconds = len(audio) / rate
    rms = float(np.sqrt(np.mean(audio**2)))
    assert 0.5 < seconds < 5.0, seconds  # "Welcome, Tony Blair" takes ~1.5 s to say
    assert rms > 0.01, rms  # speech, not silence (espeak-ng's speech is ~0.1)
    # voiced most of the time: no file of mostly padding
    frames = audio[: len(audio) // 441 * 441].reshape(-1, 441)
    assert np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.01) > 0.4


@needs_speech
def test_files_are_numbered_on_after_those_already_there(tmp_path: Path) -> None:
    (tmp_path / "door-0007.wav").write_bytes(b"an earlier run's")
    g = Greeter(to=tmp_path / "door.wav", cooldown=0)
    g(recognised("ada", 0.0))
    g(recognised("bea", 0.1))
    g.close()
    assert [p.name for p in g.files] == ["door-0008.wav", "door-0009.wav"]
    assert all(p.stat().st_size > 10_000 for p in g.files)
    assert (tmp_path / "door-0007.wav").read_bytes() == b"an earlier run's"


def test_one_greeting_per_person_per_cooldown_of_video_time() -> None:
    said: list[str] = []
    g = Greeter(cooldown=60.0, speak=False, say=said.append, template="Hi {name}")
    for ev in [
        recognised("ada", 10.0),
        recognised("ada", 30.0),  # 20 s later: still in the cooldown
        recognised("bea", 31.0),  # someone else: greeted
        recognised("ada", 40.0, "leave"),  # leaving is no arrival
        recognised(None, 45.0),  # a stranger is not greeted
        recognised("ada", 69.9),  # 59.9 s after her greeting
        recognised("ada", 70.0),  # 60 s: welcome again
        recognised("bea", 80.0),
    ]:
        g(ev)
    g.close()
    assert said == ["Hi ada", "Hi bea", "Hi ada"]
    assert g.greeted == [(10.0, "Hi ada"), (31.0, "Hi bea"), (70.0, "Hi ada")]


def test_templates_must_name_the_person() -> None:
    assert check_template("Welcome, {name}") == "Welcome, {name}"
    assert check_template("{{ {name} }}") == "{{ {name} }}"
    for bad in ("Welcome!", "Hello {nme}", "Hi {0}", "Hi {name", "{name} at {place}"):
        with pytest.raises(ValueError, match="template"):
            check_template(bad)
    with pytest.raises(ValueError, match="name"):
        Greeter(template="Welcome", speak=False)


def test_writing_greetings_needs_a_speech_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(greeter_module, "find_speech_engine", lambda: None)
    with pytest.raises(VideoError, match="espeak-ng"):
        Greeter(to=tmp_path / "x.wav")
    monkeypatch.undo()
    if greeter_module.find_speech_engine() is not None:
        with pytest.raises(VideoError, match="does not exist"):
            Greeter(to=tmp_path / "missing" / "x.wav")


def test_watch_refuses_a_bad_template_before_loading_anything(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["watch", "clip.mp4", "--db", str(tmp_path / "none.db"), "--greet", "--greet-template", "Hi {nom}"])
    assert res.exit_code == 2 and "--greet-template" in res.output and "no gallery" not in res.output
    res = CliRunner().invoke(app, ["watch", "--help"], env={"COLUMNS": "250"})
    assert "FILE-0001.wav, FILE-0002.wav" in res.output  # the help says how greeting files are named
