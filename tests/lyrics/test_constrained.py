import numpy as np
import pytest

from services.generate.text.lyrics.constrained import LineSpec, LineState, LineTargets
from services.generate.text.lyrics.lexicon import NOT_AT_LINE_END
from services.generate.text.lyrics.phrases import Strength
from services.generate.text.lyrics.prosody import pronounce, rhymes, words_of

S, W, D, OFF = Strength.STRONG, Strength.WEAK, Strength.DOWNBEAT, Strength.OFFBEAT


def _rows(lexicon, spelling, line_start=False):
    return [r for r in lexicon.rows_by_spelling[spelling]
            if bool(lexicon.line_start[r]) == line_start]


def _walk(lexicon, spec, rng):
    """Random allowed tokens until the line is done: the line's tokens and state."""
    state = LineState.begin(LineTargets(lexicon, spec))
    tokens = []
    while state.phase != "done":
        mask, _ = state.allowed()
        assert mask.any(), "a line must always be finishable"
        token = int(rng.choice(np.flatnonzero(mask)))
        tokens.append(token)
        state.advance(token)
    return tokens, state


def test_the_vocabulary_holds_single_token_words_contractions_and_line_openers(lexicon,
                                                                              tokenizer):
    (love,) = _rows(lexicon, "love")
    assert lexicon.n_tokens[love] == 1
    assert tokenizer.decode([int(lexicon.tokens[love, 0])]) == " love"
    (opener,) = _rows(lexicon, "love", line_start=True)
    assert lexicon.forms[opener] == "Love"
    (dont,) = _rows(lexicon, "don't")
    assert lexicon.n_tokens[dont] == 2 and lexicon.forms[dont] == "don't"
    (i,) = _rows(lexicon, "i")
    assert lexicon.forms[i] == "I"
    (gentle,) = _rows(lexicon, "gentle")
    assert lexicon.syllables[gentle] == 2
    assert list(lexicon.stressed[gentle, :2]) == [True, False]


def test_fragments_and_abbreviations_are_left_out(lexicon):
    for junk in ("ai", "mr", "st", "xqzzyv"):
        assert junk not in lexicon.rows_by_spelling


@pytest.mark.parametrize("seed", range(6))
def test_random_walks_always_give_the_exact_syllables(lexicon, tokenizer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.integers(1, 17))
        tokens, state = _walk(lexicon, LineSpec(n), rng)
        words = [lexicon.spellings[r] for r in state.words]
        assert sum(pronounce(w).syllables for w in words) == n
        assert words_of(tokenizer.decode(tokens)) == words
        assert words[-1] not in NOT_AT_LINE_END
        assert tokens[-1] == lexicon.newline


@pytest.mark.parametrize("target", ["night", "heart", "away", "river", "remember"])
def test_a_rhyming_line_ends_on_a_rhyme(lexicon, target):
    rng = np.random.default_rng(7)
    for n in (3, 6, 9):
        _, state = _walk(lexicon, LineSpec(n, rhyme_with=(target,)), rng)
        assert not state.rhyme_dropped
        assert rhymes(lexicon.spellings[state.words[-1]], target)


def test_no_end_word_of_the_group_is_used_again(lexicon):
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, state = _walk(lexicon, LineSpec(2, rhyme_with=("night", "light", "bright")), rng)
        assert lexicon.spellings[state.words[-1]] not in {"night", "light", "bright"}


def test_an_impossible_rhyme_keeps_the_syllables_and_says_so(lexicon):
    # Nothing of one syllable rhymes with "river" (IH1 V ER0).
    _, state = _walk(lexicon, LineSpec(1, rhyme_with=("river",)), np.random.default_rng(0))
    assert state.rhyme_dropped
    assert lexicon.syllables[state.words[0]] == 1


def test_a_line_that_opens_a_rhyme_ends_on_a_word_with_partners(lexicon):
    rng = np.random.default_rng(11)
    partners = lexicon.partners(6)
    for _ in range(20):
        _, state = _walk(lexicon, LineSpec(6, partner_syllables=6, min_partners=3), rng)
        assert partners[state.words[-1]] >= 3


def test_a_line_opens_with_a_capitalised_word_without_a_space(lexicon, tokenizer):
    state = LineState.begin(LineTargets(lexicon, LineSpec(5)))
    mask, _ = state.allowed()
    pieces = [tokenizer.id_to_token(int(t)) for t in np.flatnonzero(mask)]
    assert pieces and not any(p.startswith("Ġ") for p in pieces)


def test_commas_never_follow_an_article_or_a_first_word(lexicon):
    the = int(lexicon.tokens[_rows(lexicon, "the")[0], 0])
    state = LineState.begin(LineTargets(lexicon, LineSpec(6)))
    state.advance(int(lexicon.tokens[_rows(lexicon, "love", line_start=True)[0], 0]))
    mask, _ = state.allowed()
    assert not mask[lexicon.comma]  # one word so far
    state.advance(the)
    mask, _ = state.allowed()
    assert not mask[lexicon.comma]  # "Love the," never
    assert not mask[lexicon.newline]


def test_the_last_line_of_a_section_ends_with_a_blank_line(lexicon):
    tokens, _ = _walk(lexicon, LineSpec(4, ends_section=True), np.random.default_rng(1))
    assert tokens[-1] == lexicon.section_break != lexicon.newline


def test_stress_scores_reward_stressed_syllables_on_strong_notes(lexicon):
    targets = LineTargets(lexicon, LineSpec(4, strengths=(D, W, S, OFF)))
    (gentle,) = _rows(lexicon, "gentle")
    (again,) = _rows(lexicon, "again")  # AH0 G EH1 N
    at_start = targets.stress_scores(0)
    assert at_start[gentle] == 1.0     # GEN on the downbeat, tle on a weak beat
    assert at_start[again] == -1.0     # a- on the downbeat, GAIN on a weak beat
    assert targets.stress_scores(2)[gentle] == pytest.approx(1.25)  # GEN strong, tle off


def test_without_a_melody_there_is_no_stress_score(lexicon):
    targets = LineTargets(lexicon, LineSpec(4))
    assert not targets.stress_scores(0).any()


def test_the_allowed_tokens_carry_their_best_word_score(lexicon):
    state = LineState.begin(LineTargets(lexicon, LineSpec(2, strengths=(D, W))))
    _, bonus = state.allowed()
    (gentle,) = _rows(lexicon, "gentle", line_start=True)
    first = int(lexicon.tokens[gentle, 0])
    if lexicon.n_tokens[gentle] == 1:
        assert bonus[first] == 1.0
    assert bonus.max() <= 1.0
