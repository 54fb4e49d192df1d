"""The music21 corpus collections that make up the demo catalog, and how each is dressed."""

from __future__ import annotations

from dataclasses import dataclass

# General MIDI programs (0-based) used by the palettes below, with their GM names.
GM_NAMES: dict[int, str] = {
    0: "Acoustic Grand Piano",
    6: "Harpsichord",
    19: "Church Organ",
    21: "Accordion",
    22: "Harmonica",
    24: "Acoustic Guitar (nylon)",
    40: "Violin",
    41: "Viola",
    42: "Cello",
    46: "Orchestral Harp",
    48: "String Ensemble 1",
    52: "Choir Aahs",
    53: "Voice Oohs",
    56: "Trumpet",
    57: "Trombone",
    60: "French Horn",
    61: "Brass Section",
    68: "Oboe",
    70: "Bassoon",
    71: "Clarinet",
    73: "Flute",
    74: "Recorder",
    75: "Pan Flute",
    79: "Ocarina",
    105: "Banjo",
    109: "Bagpipe",
    110: "Fiddle",
}

# Instrumentations a piece may be given: one program per part, cycling when a piece has
# more parts than the tuple. A tuple of one program plays every part on that instrument.
CHORALE_ENSEMBLES = ((19,), (48,), (52,), (61,), (40, 40, 41, 42), (74, 73, 71, 70), (0,), (6,))
RENAISSANCE_ENSEMBLES = ((52,), (53,), (74,), (48,), (19,), (57,), (42,), (24,))
FOLK_SOLOISTS = ((73,), (74,), (40,), (21,), (71,), (68,), (24,), (0,), (22,), (79,), (75,))
FIDDLE_SOLOISTS = ((110,), (40,), (73,), (21,), (105,), (22,), (109,), (0,), (74,))
CLASSICAL_ENSEMBLES = ((0,), (48,), (40, 40, 41, 42), (46,), (71, 68, 60, 70), (6,))


@dataclass(frozen=True)
class Collection:
    """A corpus folder (or set of folders) and how its pieces appear in the catalog."""

    key: str  # short stable name, part of every track id
    folders: tuple[str, ...]  # corpus folders the pieces come from
    album: str
    artist: str  # used when the corpus metadata names no composer
    genre: str
    tags: tuple[str, ...]
    ensembles: tuple[tuple[int, ...], ...]
    tempo_bpm: tuple[int, int]  # quarter notes per minute, drawn uniformly per piece
    max_pieces: int  # evenly spaced subset of the collection's entries
    suffixes: tuple[str, ...] = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
    artist_from_metadata: bool = False  # the metadata's composer field is trustworthy


COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        key="bach-chorales",
        folders=("bach",),
        album="371 Four-Part Chorales",
        artist="Johann Sebastian Bach",
        genre="Baroque chorale",
        tags=("baroque", "sacred", "chorale", "four-part harmony"),
        ensembles=CHORALE_ENSEMBLES,
        tempo_bpm=(60, 96),
        max_pieces=371,
    ),
    Collection(
        key="essen",
        folders=("essenFolksong",),
        album="Essen Folksong Collection",
        artist="Traditional",
        genre="European folk song",
        tags=("folk", "song", "melody"),
        ensembles=FOLK_SOLOISTS,
        tempo_bpm=(80, 140),
        max_pieces=186,
    ),
    Collection(
        key="ryans-mammoth",
        folders=("ryansMammoth",),
        album="Ryan's Mammoth Collection",
        artist="Traditional",
        genre="Fiddle tune",
        tags=("folk", "dance", "fiddle tune", "american"),
        ensembles=FIDDLE_SOLOISTS,
        tempo_bpm=(96, 144),
        max_pieces=200,
        artist_from_metadata=True,
    ),
    Collection(
        key="oneills",
        folders=("oneills1850",),
        album="O'Neill's Music of Ireland",
        artist="Traditional",
        genre="Irish traditional",
        tags=("folk", "dance", "irish"),
        ensembles=FIDDLE_SOLOISTS,
        tempo_bpm=(90, 140),
        max_pieces=120,
    ),
    Collection(
        key="airds-airs",
        folders=("airdsAirs",),
        album="Aird's Selection of Airs",
        artist="Traditional",
        genre="Scottish traditional",
        tags=("folk", "air", "scottish"),
        ensembles=FOLK_SOLOISTS,
        tempo_bpm=(72, 126),
        max_pieces=60,
    ),
    Collection(
        key="misc-folk",
        folders=("miscFolk",),
        album="Fife and Minstrelsy Tunes",
        artist="Traditional",
        genre="Folk tune",
        tags=("folk", "fife", "march"),
        ensembles=FOLK_SOLOISTS,
        tempo_bpm=(90, 132),
        max_pieces=30,
    ),
    Collection(
        key="palestrina",
        folders=("palestrina",),
        album="Masses",
        artist="Giovanni Pierluigi da Palestrina",
        genre="Renaissance sacred polyphony",
        tags=("renaissance", "sacred", "mass", "polyphony"),
        ensembles=RENAISSANCE_ENSEMBLES,
        tempo_bpm=(100, 150),
        max_pieces=120,
    ),
    Collection(
        key="monteverdi",
        folders=("monteverdi",),
        album="Madrigals",
        artist="Claudio Monteverdi",
        genre="Renaissance madrigal",
        tags=("renaissance", "secular", "madrigal", "polyphony"),
        ensembles=RENAISSANCE_ENSEMBLES,
        tempo_bpm=(90, 140),
        max_pieces=49,
        suffixes=(".mxl",),
    ),
    Collection(
        key="trecento",
        folders=("trecento",),
        album="Polyphonic Music of the Fourteenth Century",
        artist="Anonymous",
        genre="Medieval polyphony",
        tags=("medieval", "ars nova", "trecento", "polyphony"),
        ensembles=RENAISSANCE_ENSEMBLES,
        tempo_bpm=(100, 150),
        max_pieces=103,
        artist_from_metadata=True,
    ),
    Collection(
        key="josquin",
        folders=("josquin",),
        album="Chansons and Motets",
        artist="Josquin des Prez",
        genre="Renaissance polyphony",
        tags=("renaissance", "polyphony", "chanson"),
        ensembles=RENAISSANCE_ENSEMBLES,
        tempo_bpm=(90, 140),
        max_pieces=8,
    ),
    Collection(
        key="classical",
        folders=(
            "beethoven",
            "mozart",
            "haydn",
            "schumann_robert",
            "schumann_clara",
            "schubert",
            "chopin",
            "corelli",
            "cpebach",
            "handel",
            "joplin",
            "verdi",
            "weber",
            "webern",
            "schoenberg",
            "beach",
            "johnson_j_r",
            "liliuokalani",
            "leadSheet",
            "luca",
            "lusitano",
            "ciconia",
        ),
        album="Masterworks Sampler",
        artist="Various",
        genre="Classical",
        tags=("classical", "art music"),
        ensembles=CLASSICAL_ENSEMBLES,
        tempo_bpm=(70, 140),
        max_pieces=70,
        suffixes=(".mxl", ".xml", ".musicxml", ".krn"),
        artist_from_metadata=True,
    ),
)

# Composer names and genres for the folders of the "classical" collection, whose corpus
# metadata spells composers inconsistently ("Beethoven", "W.A. Mozart", none at all).
FOLDER_COMPOSERS: dict[str, tuple[str, str]] = {
    "beethoven": ("Ludwig van Beethoven", "Classical string quartet"),
    "mozart": ("Wolfgang Amadeus Mozart", "Classical string quartet"),
    "haydn": ("Joseph Haydn", "Classical string quartet"),
    "schumann_robert": ("Robert Schumann", "Romantic"),
    "schumann_clara": ("Clara Schumann", "Romantic"),
    "schubert": ("Franz Schubert", "Romantic lied"),
    "chopin": ("Frédéric Chopin", "Romantic piano"),
    "corelli": ("Arcangelo Corelli", "Baroque"),
    "cpebach": ("Carl Philipp Emanuel Bach", "Classical"),
    "handel": ("George Frideric Handel", "Baroque aria"),
    "joplin": ("Scott Joplin", "Ragtime"),
    "verdi": ("Giuseppe Verdi", "Opera aria"),
    "weber": ("Carl Maria von Weber", "Romantic"),
    "webern": ("Anton Webern", "Twentieth-century"),
    "schoenberg": ("Arnold Schoenberg", "Twentieth-century"),
    "beach": ("Amy Beach", "Romantic song"),
    "johnson_j_r": ("J. Rosamond Johnson", "Hymn"),
    "liliuokalani": ("Liliuokalani", "Hawaiian song"),
    "leadSheet": ("Various", "Popular song"),
    "luca": ("D. Luca", "Medieval polyphony"),
    "lusitano": ("Vicente Lusitano", "Renaissance madrigal"),
    "ciconia": ("Johannes Ciconia", "Medieval polyphony"),
}

COLLECTIONS_BY_KEY = {collection.key: collection for collection in COLLECTIONS}
