"""Which words cp1252 reads as mojibake: Mac Roman's letters are out of place, real cp1252 text's are not."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.mojibake import _hits, misplaced, readings, unlikely


def as_cp1252(text: str, encoding: str) -> str:
    return text.encode(encoding).decode("cp1252", "surrogateescape")


# Words with each Mac Roman letter that cp1252 reads as something else than a lowercase letter
MAC_WORDS = ["Zürich", "Müller", "Bäcker", "Café", "Straße", "Crème", "François", "Tête", "où", "voilà",
             "Citroën", "naïve", "château", "Côte", "Málaga", "Håkan", "Sørensen", "cæsar", "sœur", "Chrétien",
             "São", "Mühlheim", "Öl-Bäcker"]


@pytest.mark.parametrize("word", MAC_WORDS)
def test_mac_roman_words_read_as_cp1252_are_out_of_place_and_read_right_in_mac_roman(word):
    read = as_cp1252(word, "mac_roman")
    assert misplaced(read) is not None, read
    assert ("mac_roman", word) in readings(word.encode("mac_roman"))


@pytest.mark.parametrize("word", ["don’t", "O’Brien", "Škoda", "Œuvre", "cœur", "Dušan", "col·lecció", "D´Angelo",
                                  "ÖSTERREICH", "Brand™", "µg", "Nº", "well—being", "A–Z", "wait…what",
                                  "Renée", "Zoë", "Jean\xa0Paul", "soft\xadhyphen", "10€", "“Premium”", "L’Haÿ",
                                  "Straße", "Ærø", "façade", "Ørsted", "½kg"])
def test_real_cp1252_words_are_not(word):
    assert misplaced(word) is None


def test_six_bytes_read_as_text_both_ways_and_prove_nothing():
    # cp1252's ’ – — š œ ž are Mac Roman's í ñ ó ö ú û: these words are read as cp1252
    for word in ("García", "Muñoz", "López", "Köln", "Raúl", "Saint-Eustache", "Núñez"):
        assert unlikely(word.encode("mac_roman")) is None, word


def test_the_readings_are_narrowed_by_the_words_that_follow():
    found = unlikely("a,François,b\nc,Crème,d\n".encode("mac_roman"))
    assert (found.start, found.word, found.readings) == (2, "Fran\udc8dois", (("mac_roman", "François"),))
    assert unlikely("a,François,b\n".encode("mac_roman")).readings == (("mac_roman", "François"),
                                                                          ("cp850", "Franìois"))


def test_a_dos_file_reads_as_cp850():
    assert unlikely("x,Zürich,Müller".encode("cp850")).readings == (("cp850", "Zürich"),)


def test_a_word_no_candidate_reads_as_letters_is_left_alone():
    # × between letters is odd, but Mac Roman (◊) and cp850 (Î inside a lowercase word) read it no better
    assert misplaced("width×height") is not None and unlikely("width×height".encode("cp1252")) is None


@given(st.binary(max_size=40).map(lambda raw: bytes(b"aZ ,e\xe9\xc9"[b % 7] if b < 0x80 else b for b in raw)))
def test_the_fast_look_over_bytes_finds_exactly_what_misplaced_finds(data):
    text = data.decode("cp1252", "surrogateescape")
    assert list(_hits(data)) == [i for i in range(1, len(text)) if misplaced(text[i - 1:i + 2]) == 1]
