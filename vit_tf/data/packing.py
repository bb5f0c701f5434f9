"""Pack the examples of one image into one row: the image is encoded once for all its questions.

Instruction data asks many questions about each image (VQAv2 ~5, the shapes world 8). Trained
one example per row, every question pays again for encoding its image and for the image's
tokens in the decoder. A packed row holds several examples of the same image, each followed by
one padding token:

    [image tokens] <|user|> q1 <|end|> <|assistant|> a1 <|end|> [PAD] <|user|> q2 ... [PAD]

The decoder treats a padded position inside a row as a wall (``TransformerDecoderLM._segments``):
every example attends to the image and to itself only, and its positions restart, so each is
computed exactly as if it were alone in a row (pinned in tests), and no example can read the
answer of another one. This is sequence packing with a block-diagonal mask, as in T5 / Gemma
pretraining, with the image prefix shared by the block. Unlike merging the examples into one
conversation (``vit_tf.data.merge``), a long description cannot give a short answer away.

Every trained token is kept, and the loss is still averaged over trained tokens.

Example:
    >>> packed = pack_by_image(encode_records(records, tokenizer, 160), max_length=224, seed=0)
"""

from collections import defaultdict

import numpy as np

from vit_tf.data.pipeline import EncodedExamples, round_up


def pack_by_image(examples, max_length, seed=0, pad_id=0):
    """Examples sharing an image path -> rows of at most ``max_length`` tokens (pads included).

    Args:
        examples: ``EncodedExamples`` (``encode_records``).
        max_length: tokens in one packed row, separators included; an image whose examples do
            not fit in one row gets several rows.
        seed: order of the examples within a row (shuffled, so no position is special).
        pad_id: the separator's token id (the tokenizer's [PAD], id 0); the wall itself is
            marked in ``walls``, never read from the ids (a preset vocabulary may use id 0).

    Returns ``EncodedExamples`` with one row per pack; ``record_ids`` join the packed ids
    with "+".
    """
    groups = defaultdict(list)
    for i, path in enumerate(examples.image_paths):
        groups[path].append(i)
    longest = int(examples.lengths.max()) + 1 if len(examples) else 0
    if longest > max_length:
        i = int(np.argmax(examples.lengths))
        raise ValueError(f"record {examples.record_ids[i]!r}: {longest - 1} text tokens + 1 "
                         f"separator exceed the packed length {max_length}")
    rng = np.random.default_rng(seed)
    packs = []                                          # lists of example indices
    for indices in groups.values():
        pack, used = [], 0
        for i in rng.permutation(indices):
            n = int(examples.lengths[i]) + 1            # the example and its separator
            if pack and used + n > max_length:
                packs.append(pack)
                pack, used = [], 0
            pack.append(int(i))
            used += n
        packs.append(pack)

    lengths = np.array([sum(int(examples.lengths[i]) + 1 for i in p) for p in packs], np.int32)
    width = round_up(int(lengths.max()) + 1) if packs else 8
    token_ids = np.full((len(packs), width), pad_id, np.int32)
    trained = np.zeros((len(packs), width), bool)
    walls = np.zeros((len(packs), width), bool)
    for row, pack in enumerate(packs):
        at = 0
        for i in pack:
            n = int(examples.lengths[i])
            token_ids[row, at : at + n] = examples.token_ids[i, :n]
            trained[row, at : at + n] = examples.trained[i, :n]
            walls[row, at + n] = True                   # one [PAD] after it: the wall
            at += n + 1
    # The last separator is ordinary right padding: drop it from the length.
    lengths = lengths - 1
    paths = np.array([examples.image_paths[p[0]] for p in packs])
    ids = ["+".join(str(examples.record_ids[i]) for i in p) for p in packs]
    return EncodedExamples(paths, token_ids, trained, lengths, ids, walls)
