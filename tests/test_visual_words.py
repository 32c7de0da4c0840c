"""Visual words: the NBT mapping's quirks, duplicates, plurals, phrases and positions."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from hint_lightning.text import visual_words as vw
from hint_lightning.text.visual_words import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    find_visual_words,
    load_visual_words,
    parse_visual_words,
    plural_forms,
    read_visual_words_text,
)

NBT = resources.files("hint_lightning") / "resources" / "nbt"


def git_blob(data: bytes) -> str:
    """The git blob id of a file's bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_package_data_is_the_unchanged_nbt_files_with_attribution() -> None:
    assert git_blob((NBT / "coco_class_name.txt").read_bytes()) == (
        "572c083b33de6b8c6d2adf6e02c9b6226ae736a4"
    )
    assert git_blob((NBT / "split_robust_coco.json").read_bytes()) == (
        "514d5a302fba36d405ddc93ac7e71183f6802df3"
    )
    attribution = (NBT / "ATTRIBUTION.md").read_text()
    for text in (
        "jiasenlu/NeuralBabyTalk",
        "c351ae6ca59380eb4cf38384d3e66233b4d9e1b1",
        "data/coco/coco_class_name.txt",
        "data/robust_coco/split_robust_coco.json",
        "MIT License",
        "Copyright (c) 2017 Jiasen Lu",
        "COCO",
    ):
        assert text in attribution


def test_the_80_official_categories_in_id_order() -> None:
    assert len(COCO_CATEGORIES) == 80 and len(set(COCO_CATEGORY_IDS)) == 80
    assert list(COCO_CATEGORY_IDS) == sorted(COCO_CATEGORY_IDS)
    assert COCO_CATEGORY_IDS[0] == 1 and COCO_CATEGORY_IDS[-1] == 90
    gaps = sorted(set(range(1, 91)) - set(COCO_CATEGORY_IDS))
    assert gaps == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]
    words = load_visual_words()
    for category_id, name, _ in COCO_CATEGORIES:  # every category name maps to its own id
        assert words.category_of(name) == category_id


def test_number_of_word_forms() -> None:
    words = load_visual_words()
    assert len(words) == 801  # the paper counts 830 with rules it does not publish
    assert len(words.listed) == 409 and len(words) - len(words.listed) == 392
    assert len(load_visual_words("exclude")) == 796
    assert "801 word forms" in (vw.__doc__ or "")


def test_whitespace_quirks_are_cleaned() -> None:
    words = load_visual_words()
    assert words.category_of("motor bike") == 4  # ' motor bike' (double space) in the file
    assert ("motor", "bike") in words.forms
    assert words.category_of("bison") == 21  # 'bison '
    assert words.category_of("cheesecake") == 61  # ' cheesecake'
    assert words.category_of("chesterfield") == 63  # 'chesterfield '
    assert words.category_of("iphone") == 77  # 'iPhone'
    for form in words.forms:
        assert all(token and token == token.strip().lower() for token in form)
        assert all(" " not in token for token in form)


def test_words_under_two_categories() -> None:
    expected = {"surfboard": (9, 42), "cattle": (20, 21), "ewe": (20, 21), "recliner": (62, 63)}
    last, exclude = load_visual_words("last"), load_visual_words("exclude")
    assert dict(last.ambiguous) == dict(exclude.ambiguous) == expected
    # "last": NBT's dict keeps the last line; plurals follow their singular.
    for word, category in [("surfboard", 42), ("cattle", 21), ("ewe", 21), ("recliner", 63)]:
        assert last.category_of(word) == category
    assert last.category_of("ewes") == 21 and last.category_of("recliners") == 63
    # "exclude": ambiguous words are no visual words, unless they are a category's name.
    assert exclude.category_of("surfboard") == 42 and exclude.category_of("surfboards") == 42
    for word in ("cattle", "ewe", "ewes", "recliner", "recliners"):
        assert exclude.category_of(word) is None
    assert exclude.category_of("lamb") == 20 and exclude.category_of("sofa") == 63
    with pytest.raises(ValueError, match="duplicates"):
        parse_visual_words(read_visual_words_text(), duplicates="first")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("form", "category"),
    [
        ("people", 1),
        ("persons", 1),
        ("men", 1),
        ("women", 1),
        ("children", 1),
        ("policemen", 1),
        ("ladies", 1),
        ("cowboys", 1),
        ("thieves", 1),
        ("mice", 74),
        ("knives", 49),
        ("pocketknives", 49),
        ("sheep", 20),
        ("geese", 16),
        ("calves", 21),
        ("oxen", 21),
        ("buffaloes", 21),
        ("buses", 6),
        ("couches", 63),
        ("benches", 15),
        ("sandwiches", 54),
        ("puppies", 18),
        ("skis", 35),
        ("teddy bears", 88),
        ("wine glasses", 46),
        ("hot dogs", 58),
        ("motor bikes", 4),
        ("sports balls", 37),
        ("cell phones", 77),
    ],
)
def test_plural_forms(form: str, category: int) -> None:
    assert load_visual_words().category_of(form) == category


def test_no_plural_of_plural_or_uncountable_words() -> None:
    words = load_visual_words()
    for bad in ("peoples", "childrens", "sheeps", "cattles", "skiss", "scissorses", "luggages"):
        assert bad not in words
    for bad in ("mouses", "knifes", "mans", "womans", "persones", "thiefs"):
        assert bad not in words
    assert plural_forms("hair drier") == ("hair driers",)
    assert plural_forms("lady") == ("ladies",) and plural_forms("trolley") == ("trolleys",)
    assert plural_forms("bus") == ("buses",) and plural_forms("couch") == ("couches",)


def words(text: str) -> list[str]:
    """A caption's tokens."""
    return text.split(" ")


def test_find_visual_words_longest_match_first_at_the_last_token() -> None:
    tokens = words("a man holding a baseball bat next to two hot dogs and a dog")
    #               0 1   2       3 4        5   6    7  8   9   10   11  12 13
    assert find_visual_words(tokens) == [(1, 1), (5, 39), (10, 58), (13, 18)]
    assert find_visual_words(words("a baseball on the grass")) == [(1, 37)]
    assert find_visual_words(words("women with cell phones")) == [(0, 1), (3, 77)]
    assert find_visual_words(["A", "Teddy", "Bear"]) == [(2, 88)]  # case-insensitive
    assert find_visual_words(["a", "teddy"]) == []
    assert find_visual_words([]) == []


def test_find_visual_words_does_not_overlap() -> None:
    # "hot dog" consumes "dog": one hot dog, no dog.
    assert find_visual_words(["hot", "dog", "dog"]) == [(1, 58), (2, 18)]
    assert find_visual_words(["cell", "phone", "phone"]) == [(1, 77), (2, 77)]
    assert find_visual_words(["stop", "sign", "sign"]) == [(1, 13)]  # "sign" alone is none


def test_a_custom_mapping_and_malformed_files() -> None:
    text = read_visual_words_text()
    lines = text.splitlines()
    words = parse_visual_words(
        "\n".join([lines[0] + ", astronaut", *lines[1:]]), duplicates="exclude"
    )
    assert find_visual_words(["two", "astronauts"], words) == [(1, 1)]
    with pytest.raises(ValueError, match="expected 80 category lines"):
        parse_visual_words("\n".join(lines[:79]))
    swapped = [lines[1], lines[0], *lines[2:]]
    with pytest.raises(ValueError, match=r"line 1 .* expected the name of COCO category 1"):
        parse_visual_words("\n".join(swapped))
