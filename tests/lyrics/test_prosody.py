from services.generate.text.lyrics.prosody import (
    hyphenate,
    pronounce,
    rhymes,
    syllable_count,
    words_of,
)


def test_syllables_and_stress_come_from_the_first_cmudict_pronunciation():
    gentle = pronounce("Gentle")
    assert gentle is not None
    assert gentle.syllables == 2
    assert gentle.stresses == (True, False)
    assert syllable_count("river") == 2
    assert syllable_count("beautiful") == 3
    assert pronounce("the").stresses == (False,)  # DH AH0 comes first


def test_words_missing_from_cmudict_have_no_pronunciation():
    assert pronounce("xqzzyv") is None
    assert syllable_count("xqzzyv") is None
    assert pronounce("two words") is None


def test_contractions_are_words():
    assert syllable_count("don't") == 1
    assert syllable_count("didn't") == 2


def test_rhymes_compare_the_last_stressed_vowel_onward():
    assert rhymes("night", "light")
    assert rhymes("river", "shiver")
    assert not rhymes("night", "river")


def test_a_word_does_not_rhyme_with_itself():
    assert not rhymes("night", "night")
    assert not rhymes("Night", "night")


def test_unknown_words_rhyme_with_nothing():
    assert not rhymes("xqzzyv", "night")


def test_hyphenation_uses_pyphen_when_it_agrees_with_cmudict():
    assert hyphenate("gentle", 2) == ["gen", "tle"]
    assert hyphenate("river", 2) == ["riv", "er"]
    assert hyphenate("love", 1) == ["love"]


def test_hyphenation_falls_back_to_an_even_split():
    # pyphen keeps "fire" whole; CMUdict says two syllables (F AY1 ER0).
    assert hyphenate("fire", 2) == ["fi", "re"]
    pieces = hyphenate("beautiful", 5)
    assert len(pieces) == 5 and "".join(pieces) == "beautiful"


def test_every_split_joins_back_to_the_word():
    for word in ["remember", "everything", "heaven", "Gentle", "I'm", "wouldn't"]:
        n = syllable_count(word)
        pieces = hyphenate(word, n)
        assert len(pieces) == n and "".join(pieces) == word


def test_words_of_a_line_drop_punctuation_and_keep_apostrophes():
    assert words_of("Don't go, my love!") == ["don't", "go", "my", "love"]


def test_words_pyphen_leaves_whole_are_cut_at_their_vowel_groups():
    assert hyphenate("about", 2) == ["a", "bout"]
    assert hyphenate("above", 2) == ["a", "bove"]  # the final e is silent
    assert hyphenate("kitchen", 2) == ["kit", "chen"]
