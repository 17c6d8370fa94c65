"""Songs as users have them, through both front doors: 4-minute stereo songs in WAV, FLAC,
Ogg Vorbis and MP3, and a real recording shipped by a Debian package.

Our 20 s clips hid a crash that every real song hit: the explanation page encoded each whole
stem as Ogg Vorbis in one libsndfile call, and libsndfile 1.2.2's encoder segfaults on a long
buffer, so `musiclime explain` on a 4-minute song exited 139 and `musiclime run` explained none
of its songs. Each page here must hold every stem's whole length.

Kept cheap for CI's two cores: one song rendered by the demo corpus's real-length option and
written in the four formats, its ground-truth stems (separator=oracle), the demo classifier on
16 masks, and one `musiclime run` for all four. The real recording goes through the default
separator (the shipped Open-Unmix model), as a user's song would.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from test_workflow import with_snakemake_log

from musiclime.io.audio import load_audio
from musiclime_demo import corpus as dc

pytestmark = pytest.mark.slow

SECONDS = 240.0
FORMATS = ("wav", "flac", "ogg", "mp3")
QUICK = ["explainer.num_samples=16", "metrics.enabled=false", "tracking.enabled=false"]
#: Debian's asc-music (GPL-2+): three stereo MP3 recordings by Michael Kievernagel for the game
#: Advanced Strategic Command; `make system-deps` installs it
REAL_RECORDING = Path("/usr/share/games/asc/music/machine_wars.mp3")
REAL_SECONDS = 290.8


def musiclime(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musiclime.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def page_clip_seconds(page: Path) -> dict[str, float]:
    """Every audio clip the page embeds -> its decoded length in seconds."""
    html = page.read_text(encoding="utf-8")
    found = re.findall(r'data-clip="([^"]+)" src="data:audio/(?:ogg|wav);base64,([^"]+)"', html)
    out = {}
    for name, data in found:
        info = sf.info(io.BytesIO(base64.b64decode(data)))
        out[name] = info.frames / info.samplerate
    return out


def assert_whole_song_page(out_dir: Path, seconds: float) -> None:
    assert (out_dir / "explanation.json").is_file()
    page = out_dir / "explanation.html"
    clips = page_clip_seconds(page)
    stems = {k for k in clips if k.startswith("stem-")}
    assert len(stems) == 4 and "mix" in clips, sorted(clips)
    for name in (*stems, "mix"):
        assert abs(clips[name] - seconds) < 0.05, (name, clips[name], seconds)


@pytest.fixture(scope="module")
def long_songs(tmp_path_factory) -> Path:
    """One 4-minute stereo demo song, its mix written as WAV, FLAC, OGG and MP3: a manifest of
    four songs sharing the lyrics and the ground-truth stems."""
    root = tmp_path_factory.mktemp("long_songs")
    song = dc.render_song(171, seed=0, split="test", duration=SECONDS, channels=2)
    first = dc.write_song(song, root, audio_format="wav")
    rows = []
    for fmt in FORMATS:
        audio = f"songs/{song.song_id}.{fmt}"
        if fmt != "wav":
            dc.write_corpus_audio(root / audio, song.mix_audio(), song.sample_rate,
                                  *dc.mix_encoding(fmt, song.channels))
        rows.append({"song_id": f"long_{fmt}", "audio_path": audio,
                     "lyrics_path": first["lyrics_path"], "stems_dir": first["stems_dir"]})
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


@pytest.mark.parametrize("fmt", FORMATS)
def test_explain_a_four_minute_stereo_song(long_songs, tmp_path, fmt):
    root = long_songs.parent
    row = next(r for r in csv.DictReader(open(long_songs)) if r["song_id"] == f"long_{fmt}")
    info = sf.info(root / row["audio_path"])
    assert info.channels == 2 and abs(info.duration - SECONDS) < 0.1
    out = tmp_path / "out"
    proc = musiclime("explain", str(root / row["audio_path"]), "--lyrics",
                     str(root / row["lyrics_path"]), "--stems", str(root / row["stems_dir"]),
                     "--out", str(out), "--quiet", "separator=oracle", *QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "predicted" in proc.stdout
    assert_whole_song_page(out, SECONDS)
    meta = json.loads((out / "explanation.json").read_text())["metadata"]
    assert meta["model_info"]["total_audio_components"] == 40


def test_run_four_minute_stereo_songs_in_four_formats(long_songs, tmp_path):
    results = tmp_path / "results"
    proc = musiclime("run", "--cores", "2", f"results_root={results}",
                     f"dataset.manifest={long_songs}", "dataset.split=null",
                     "separator=oracle", *QUICK)
    out = with_snakemake_log(proc.stdout + proc.stderr)
    assert proc.returncode == 0, out[-5000:]
    done = {p.parent.name: p.parent for p in results.glob("fit/**/explanation.json")}
    assert set(done) == {f"long_{fmt}" for fmt in FORMATS}, sorted(done)
    for folder in done.values():
        assert_whole_song_page(folder, SECONDS)


@pytest.mark.skipif(not REAL_RECORDING.is_file(),
                    reason=f"{REAL_RECORDING} is missing: install Debian's asc-music package "
                           "(make system-deps does)")
def test_explain_a_real_recording(tmp_path):
    info = sf.info(REAL_RECORDING)
    assert info.channels == 2 and abs(info.duration - REAL_SECONDS) < 1.0
    lyrics = tmp_path / "machine_wars.txt"  # an instrumental: lyrics of our own
    lyrics.write_text("[Intro]\nmachines are marching\nsteel against the sky\n\n[Outro]\n"
                      "the war is won\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = musiclime("explain", str(REAL_RECORDING), "--lyrics", str(lyrics), "--out",
                     str(out), "--quiet", *QUICK)  # the default separator and classifier
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    # the decoded length: this MP3's header counts 5510 frames (0.25 s) more than it holds
    decoded, rate = load_audio(REAL_RECORDING)
    assert_whole_song_page(out, len(decoded) / rate)
    data = json.loads((out / "explanation.json").read_text())
    lyric_features = {w["feature"] for e in data["explanations"].values() for w in e["weights"]
                      if w["type"] != "audio"}
    assert lyric_features == {"machines are marching", "steel against the sky",
                              "the war is won"}
