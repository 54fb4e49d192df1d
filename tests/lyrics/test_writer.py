"""The writer end to end with the converted SmolLM2 on ONNX Runtime (small requests)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import mido
import pytest
import pytest_asyncio

from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.text.lyrics.domain import LyricsRequest, Section
from services.generate.text.lyrics.prosody import rhymes, syllable_count, words_of
from services.generate.text.lyrics.writer import LyricsWriter
from services.generate.text.model import TextModel
from tests.lyrics.conftest import LLM_DIR, needs_llm
from tests.lyrics.midi_builder import midi_bytes, scale_phrase

pytestmark = [needs_llm, pytest.mark.asyncio(loop_scope="module")]
MELODY = midi_bytes([*scale_phrase(0, 6), *scale_phrase(7, 5, pitch=62)])  # 6 + 5 notes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def writer() -> AsyncIterator[LyricsWriter]:
    spec = ModelSpec.load(LLM_DIR)
    backend = OnnxRuntimeBackend([], 2)
    await backend.load(spec)
    model = TextModel(spec, DecodeBatcher(backend, spec))
    yield await LyricsWriter.create(model)
    await model.batcher.close()
    await backend.close()


def _syllables(text: str) -> int:
    return sum(syllable_count(word) for word in words_of(text))


async def test_lyrics_on_a_melody_fit_every_note_and_rhyme(writer):
    request = LyricsRequest("a quiet night by the sea", "AABB", melody_midi=MELODY, seed=3,
                            candidates=4)
    lyrics = await writer.write(request)
    first, second = lyrics.lines
    assert [len(first.notes), len(second.notes)] == [6, 5]
    for line in lyrics.lines:
        assert _syllables(line.text) == len(line.syllables) == len(line.notes)
        assert "".join(line.syllables).replace(" ", "") == line.text.replace(" ", "")
    assert not second.rhyme_dropped
    assert rhymes(words_of(first.text)[-1], words_of(second.text)[-1])
    assert lyrics.text == f"{first.text}\n{second.text}"
    midi = mido.MidiFile(file=io.BytesIO(lyrics.midi))
    sung = [m.text for m in midi.tracks[1] if m.type == "lyrics"]
    assert len(sung) == 11
    assert "".join(sung) == lyrics.display + "\n"


async def test_the_same_seed_gives_the_same_lyrics(writer):
    request = LyricsRequest("a quiet night by the sea", "AABB", melody_midi=MELODY, seed=3,
                            candidates=4)
    again = await writer.write(request)
    once = await writer.write(request)
    assert again.text == once.text and again.midi == once.midi


async def test_lyrics_without_a_melody_keep_the_syllables_per_line(writer):
    request = LyricsRequest("leaving home", "AABB", sections=(Section("verse", 2, 7),),
                            seed=5, candidates=4)
    lyrics = await writer.write(request)
    assert [_syllables(line.text) for line in lyrics.lines] == [7, 7]
    assert [line.section for line in lyrics.lines] == ["verse", "verse"]
    a, b = (words_of(line.text)[-1] for line in lyrics.lines)
    assert rhymes(a, b)
    assert lyrics.midi == b""
    assert lyrics.mean_logprob < 0
