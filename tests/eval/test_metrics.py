"""Tests for vit_tf.eval.metrics: every score is pinned to the implementation papers report.

Where the reference numbers come from (computed once in a scratch venv, never a dependency):

- ``pycocoevalcap`` 1.2 (PyPI): ``Bleu(4).compute_score(gts, res)`` and
  ``Cider().compute_score(gts, res)`` with ``gts = {i: refs}``, ``res = {i: [prediction]}``.
  Set A was first tokenised by its ``PTBTokenizer`` (Java, stanford-corenlp 3.4.1, bundled);
  sets B-D were fed as already tokenised, lowercase strings.
- ``nltk`` 3.10.4: ``nltk.translate.bleu_score.corpus_bleu`` on whitespace-split tokens, weights
  ``(1,)``, ``(1/2,)*2``, ``(1/3,)*3``, ``(1/4,)*4``, no smoothing.
- ``vqaEval.py`` of github.com/GT-Vision-Lab/VQA at c4e6a0e: ``processPunctuation`` then
  ``processDigitArticle`` on each answer.

Our code reproduces these to ~1e-15, so the tolerance here is 1e-12.
"""

import pytest

from vit_tf.eval.metrics import (
    bleu_scores,
    cider_d,
    cider_d_scores,
    corpus_bleu,
    exact_match,
    normalize_answer,
    tokenize_caption,
)

TOL = 1e-12

# Set A: COCO-like raw captions; one perfect match (item 0), one poor (item 2), one too short (4).
SET_A_PREDICTIONS = [
    "A man riding a wave on top of a surfboard.",
    "Two zebras are grazing in a grassy field.",
    "A red car parked on the street.",
    "A plate of food with broccoli and rice.",
    "A dog.",
]
SET_A_REFERENCES = [
    ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.",
     "A person on a surfboard riding a wave."],
    ["Two zebras grazing in a field.", "A couple of zebras eating grass in a field.",
     "Zebras standing in the grass near some trees.", "Two zebras graze on the dry grass."],
    ["A train traveling down tracks next to a forest.",
     "A passenger train going through the woods."],
    ["A close up of a plate of food with broccoli.",
     "A white plate topped with rice, meat and broccoli.",
     "A meal of chicken, rice and broccoli on a plate.", "Broccoli and rice on a dinner plate.",
     "A plate with broccoli, rice and some meat."],
    ["A brown dog lying on a couch.", "A dog sleeping on the sofa next to a pillow."],
]
# pycocoevalcap 1.2 after its PTBTokenizer; our tokenize_caption gives the same tokens here.
SET_A_COCO_BLEU = [0.6935023197605168, 0.6330781070234855, 0.5794556245882975,
                   0.5323531107682342]
SET_A_NLTK_BLEU = [0.6935023198001454, 0.6330781070611687, 0.5719293750220001,
                   0.5210634550594293]
SET_A_CIDER = [4.460762728100049, 1.6938992640557335, 0.005337094095006029, 3.0306878596673577,
               0.8725902090114203]
SET_A_CIDER_MEAN = 2.0126554309859133

# Set B: pre-tokenised edge cases: an empty prediction, a one-word one, a two-word one.
SET_B_PREDICTIONS = ["a cat sitting on a mat", "", "zebra", "two dogs"]
SET_B_REFERENCES = [
    ["a cat is sitting on a mat", "a cat on a mat"],
    ["a bowl of fruit on a table", "apples and oranges in a bowl"],
    ["zebra", "a zebra standing in a field"],
    ["two dogs playing in the snow", "dogs running", "two brown dogs"],
]
SET_B_COCO_BLEU = [0.5737534206099324, 0.5237628181751335, 0.42853688371801785,
                   0.35026130673499306]
SET_B_NLTK_BLEU = [0.5163780786636895, 0.4303150655530745, 0.3119441043265775,
                   0.23211387175251488]
SET_B_CIDER = [4.979122254702231, 0.0, 1.742607711637612, 1.8063327368938995]
SET_B_CIDER_MEAN = 2.132015675808436

# Set C: the corpus_bleu example of NLTK's documentation (case kept: "Party" != "party").
SET_C_PREDICTIONS = [
    "It is a guide to action which ensures that the military always obeys the commands of the "
    "party",
    "he read the book because he was interested in world history",
]
SET_C_REFERENCES = [
    ["It is a guide to action that ensures that the military will forever heed Party commands",
     "It is the guiding principle which guarantees the military forces always being under the "
     "command of the Party",
     "It is the practical guide for the army always to heed the directions of the party"],
    ["he was interested in world history because he read the book"],
]
NLTK_DOC_BLEU_4 = 0.5920778868801042  # nltk 3.10.4 corpus_bleu default; its docs print 0.5920...
SET_C_COCO_BLEU = [0.9655172413127229, 0.8242803277119698, 0.7069430098454109,
                   0.592077886836745]
SET_C_NLTK_BLEU = [0.9655172413793104, 0.8242803277698696, 0.7069430098960677,
                   NLTK_DOC_BLEU_4]
SET_C_CIDER = [2.583919964888362, 7.666666666666667]

# Set D: every prediction equals one of its references.
SET_D_PREDICTIONS = ["a man riding a horse on a beach", "a bowl of soup"]
SET_D_REFERENCES = [["a man riding a horse on a beach", "a horse on the sand"],
                    ["a bowl of soup", "soup in a white bowl"]]
SET_D_CIDER = [6.170279505339158, 5.711733680411031]


# Inputs and outputs of the official vqaEval.py (processPunctuation + processDigitArticle).
OFFICIAL_VQA_NORMALISATION = [
    ("Two", "2"), ("The Two dogs!", "2 dogs"), ("  a Red  BALL ", "red ball"), ("3.5", "3.5"),
    ("3.", "3"), ("1,000", "1000"), ("yes.", "yes"), ("Yes!", "yes"),
    ("black-and-white", "black and white"), ("black - white", "black white"),
    ("an apple, an orange", "apple orange"), ("it's a dog's toy", "it's dog's toy"),
    ("none", "0"), ("Ten\tcats\n", "10 cats"), ("what?", "what"), ("(left)", "left"),
    ("a/b", "b"), ("e.g. cat", "eg cat"), ("12:30", "12:30"), ("x+y=z", "x y z"),
    ("@home", "home"), ("well... maybe", "well maybe"), ("the end.", "end"),
    ("hot_dog", "hot dog"), ("[1, 2]", "1 2"),
]


@pytest.mark.parametrize("answer,expected", OFFICIAL_VQA_NORMALISATION)
def test_normalize_answer_matches_official_vqa_eval_script(answer, expected):
    assert normalize_answer(answer) == expected


def test_normalize_answer_lowercases_drops_articles_and_maps_number_words():
    assert normalize_answer("The THREE Cats") == "3 cats"
    assert normalize_answer("an Owl and a zero") == "owl and 0"


def test_normalize_answer_keeps_decimal_point_but_strips_sentence_period():
    assert normalize_answer("It is 2.5 meters.") == "it is 2.5 meters"


def test_exact_match_is_one_after_normalisation_and_zero_otherwise():
    assert exact_match("Two.", "2") == 1.0
    assert exact_match("The red ball!", "red ball") == 1.0
    assert exact_match("blue", "red") == 0.0
    assert exact_match("", "red") == 0.0


# Outputs of coco-caption's PTBTokenizer (-lowerCase, punctuation tokens removed).
PTB_TOKENISATION = [
    ("A man riding a wave on top of a surfboard.",
     "a man riding a wave on top of a surfboard"),
    ("The dog's ball isn't red; it's BLUE!",
     "the dog 's ball is n't red it 's blue"),
    ("A black-and-white photo of 3.5 cats, 2,000 dogs and birds.",
     "a black-and-white photo of 3.5 cats 2,000 dogs and birds"),
    ("It's a cat. He's \"happy\", they're, we've, I'll, you'd, I'm",
     "it 's a cat he 's happy they 're we 've i 'll you 'd i 'm"),
    ("A dog\u2019s bone won't fit at 10:30 o'clock", "a dog 's bone wo n't fit at 10:30 o'clock"),
]


@pytest.mark.parametrize("caption,expected", PTB_TOKENISATION)
def test_tokenize_caption_matches_coco_ptb_tokenizer_on_ordinary_captions(caption, expected):
    assert tokenize_caption(caption) == expected.split()


def test_bleu_coco_style_matches_pycocoevalcap_on_raw_captions():
    assert bleu_scores(SET_A_PREDICTIONS, SET_A_REFERENCES) == pytest.approx(SET_A_COCO_BLEU,
                                                                             abs=TOL)
    assert corpus_bleu(SET_A_PREDICTIONS, SET_A_REFERENCES) == pytest.approx(SET_A_COCO_BLEU[-1],
                                                                             abs=TOL)


@pytest.mark.parametrize("predictions,references,expected", [
    (SET_B_PREDICTIONS, SET_B_REFERENCES, SET_B_COCO_BLEU),
    (SET_C_PREDICTIONS, SET_C_REFERENCES, SET_C_COCO_BLEU),
])
def test_bleu_coco_style_matches_pycocoevalcap_on_pretokenised_text(predictions, references,
                                                                    expected):
    scores = bleu_scores(predictions, references, tokenize=False)
    assert scores == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("predictions,references,tokenize,expected", [
    (SET_A_PREDICTIONS, SET_A_REFERENCES, True, SET_A_NLTK_BLEU),  # NLTK got the PTB tokens
    (SET_B_PREDICTIONS, SET_B_REFERENCES, False, SET_B_NLTK_BLEU),
    (SET_C_PREDICTIONS, SET_C_REFERENCES, False, SET_C_NLTK_BLEU),
])
def test_bleu_nltk_style_matches_nltk_corpus_bleu(predictions, references, tokenize, expected):
    scores = bleu_scores(predictions, references, style="nltk", tokenize=tokenize)
    assert scores == pytest.approx(expected, abs=TOL)


def test_bleu_coco_style_reproduces_nltk_documented_example_up_to_coco_epsilons():
    # coco-caption adds 1e-15 / 1e-9 to every precision's numerator / denominator; NLTK does not.
    # On this example that moves BLEU-4 by 7e-11, so the two agree well within 1e-9.
    coco = corpus_bleu(SET_C_PREDICTIONS, SET_C_REFERENCES, tokenize=False)
    nltk = corpus_bleu(SET_C_PREDICTIONS, SET_C_REFERENCES, tokenize=False, style="nltk")
    assert coco == pytest.approx(NLTK_DOC_BLEU_4, abs=1e-9)
    assert nltk == pytest.approx(NLTK_DOC_BLEU_4, abs=TOL)


def test_bleu_styles_differ_when_predictions_are_shorter_than_four_words():
    # NLTK counts at least one candidate n-gram per item and order, coco-caption zero, so on
    # short predictions (set A's "a dog") the two definitions give different BLEU-4.
    coco = corpus_bleu(SET_A_PREDICTIONS, SET_A_REFERENCES)
    nltk = corpus_bleu(SET_A_PREDICTIONS, SET_A_REFERENCES, style="nltk")
    assert coco - nltk == pytest.approx(SET_A_COCO_BLEU[-1] - SET_A_NLTK_BLEU[-1], abs=TOL)
    assert coco - nltk > 1e-3


def test_bleu_of_predictions_identical_to_a_reference_is_one():
    coco = bleu_scores(SET_D_PREDICTIONS, SET_D_REFERENCES)
    assert coco == pytest.approx([1.0] * 4, abs=1e-6)  # coco epsilons: 0.9999999998
    assert bleu_scores(SET_D_PREDICTIONS, SET_D_REFERENCES, style="nltk") == [1.0] * 4


@pytest.mark.parametrize("predictions,references,tokenize,expected", [
    (SET_A_PREDICTIONS, SET_A_REFERENCES, True, SET_A_CIDER),
    (SET_B_PREDICTIONS, SET_B_REFERENCES, False, SET_B_CIDER),
    (SET_C_PREDICTIONS, SET_C_REFERENCES, False, SET_C_CIDER),
    (SET_D_PREDICTIONS, SET_D_REFERENCES, False, SET_D_CIDER),
])
def test_cider_d_per_item_matches_pycocoevalcap(predictions, references, tokenize, expected):
    scores = cider_d_scores(predictions, references, tokenize=tokenize)
    assert scores == pytest.approx(expected, abs=TOL)


def test_cider_d_corpus_score_is_pycocoevalcap_mean():
    assert cider_d(SET_A_PREDICTIONS, SET_A_REFERENCES) == pytest.approx(SET_A_CIDER_MEAN,
                                                                         abs=TOL)
    assert cider_d(SET_B_PREDICTIONS, SET_B_REFERENCES,
                   tokenize=False) == pytest.approx(SET_B_CIDER_MEAN, abs=TOL)


def test_empty_predictions_score_zero_without_crashing():
    # pycocoevalcap 1.2 gives the same zeros for BLEU-1..4 and CIDEr-D on this input.
    references = [["a cat"], ["a dog"]]
    assert cider_d_scores(["", ""], references) == [0.0, 0.0]
    assert bleu_scores(["", ""], references) == [0.0] * 4
    assert bleu_scores(["", ""], references, style="nltk") == [0.0] * 4


def test_cider_d_of_a_one_item_corpus_is_zero_as_in_pycocoevalcap():
    # idf = log(#items) - log(df) = log(1) - log(1) = 0 for every n-gram.
    assert cider_d(["a cat on a mat"], [["a cat on a mat", "a cat"]]) == 0.0


@pytest.mark.parametrize("predictions,references,message", [
    (["a cat"], [["a cat"], ["a dog"]], "1 predictions but 2"),
    ([], [], "nothing to score"),
    (["a cat"], ["a cat"], "item 0"),
    (["a cat"], [[]], "item 0"),
])
def test_caption_metrics_reject_malformed_inputs(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        corpus_bleu(predictions, references)
    with pytest.raises(ValueError, match=message):
        cider_d(predictions, references)


def test_bleu_rejects_unknown_style():
    with pytest.raises(ValueError, match="style"):
        corpus_bleu(["a cat"], [["a cat"]], style="sacrebleu")
