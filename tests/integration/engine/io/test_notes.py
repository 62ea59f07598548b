"""Research notes in Postgres: search by meaning with the packaged model, else by words."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from engine.analogs.notes import NOTE_DIMENSION, NoteEmbedder, local_embedder
from engine.io.notes import create_note, delete_note, get_note, list_notes, search_notes

NOTES = [
    ("Crash", "Equities sold off hard as volatility spiked and panic selling spread.", "SPX"),
    ("Quiet grind higher", "A calm bull market: low volatility, steady gains.", "SPX"),
    ("Rate decision", "The central bank raised interest rates by 50 basis points.", "IXIC"),
]


@pytest.fixture
def embedder() -> NoteEmbedder:
    model = local_embedder()
    if model is None:  # the dev group installs it; a bare install searches by words
        pytest.skip("no local embedding model installed")
    return model


def test_the_packaged_model_embeds_offline(embedder: NoteEmbedder) -> None:
    vectors = embedder.embed(["stock market crash", "calm uptrend"])
    assert vectors.shape == (2, NOTE_DIMENSION)
    assert vectors[0] @ vectors[0] == pytest.approx(1.0, abs=1e-4)


def test_semantic_search_finds_notes_by_meaning(
    db: psycopg.Connection, embedder: NoteEmbedder
) -> None:
    for title, body, symbol in NOTES:
        create_note(db, title=title, body=body, symbol=symbol, embedder=embedder)
    hits = search_notes(db, "market panic and a sharp drop in stocks", k=3, embedder=embedder)
    assert hits.method == "semantic" and hits.model == embedder.name
    assert hits.notes[0]["title"] == "Crash"
    scores = [note["score"] for note in hits.notes]
    assert scores == sorted(scores, reverse=True)
    only_ixic = search_notes(db, "stocks", embedder=embedder, symbol="IXIC")
    assert [note["title"] for note in only_ixic.notes] == ["Rate decision"]


def test_notes_written_without_a_model_are_embedded_on_search(
    db: psycopg.Connection,
    embedder: NoteEmbedder,
) -> None:
    note = create_note(db, title="Crash", body=NOTES[0][1], symbol="SPX", day=date(2008, 10, 10))
    assert note["embedding_model"] is None and note["day"] == date(2008, 10, 10)
    hits = search_notes(db, "sell-off", embedder=embedder)
    assert [n["id"] for n in hits.notes] == [note["id"]]
    stored = get_note(db, note["id"])
    assert stored is not None and stored["embedding_model"] == embedder.name


def test_without_a_model_search_is_full_text(db: psycopg.Connection) -> None:
    for title, body, symbol in NOTES:
        create_note(db, title=title, body=body, symbol=symbol, tags=["macro"])
    hits = search_notes(db, "volatility", k=5)
    assert hits.method == "fulltext" and hits.model is None
    assert {note["title"] for note in hits.notes} == {"Crash", "Quiet grind higher"}
    assert search_notes(db, "rates -volatility").notes[0]["title"] == "Rate decision"
    assert search_notes(db, "bitcoin").notes == []
    assert search_notes(db, "'; DROP TABLE research_notes; --").notes == []
    page, total = list_notes(db, tag="macro", limit=2)
    assert total == 3 and len(page) == 2
    assert delete_note(db, page[0]["id"]) and not delete_note(db, page[0]["id"])
    assert list_notes(db)[1] == 2
