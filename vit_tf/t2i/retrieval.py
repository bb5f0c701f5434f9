"""The retrieval baseline: for a prompt, the training image whose caption is nearest.

Captions and prompts become TF-IDF vectors of word unigrams and bigrams (bigrams keep "red
circle" apart from "red ... circle"), compared by cosine similarity; ties go to the earliest
caption. It can only return scenes it has seen, so it shows what memorising the training set
is worth: perfect on prompts that are training captions, weak on new compositions and layouts.
It has no randomness (one image per prompt, diversity 0).

Example::

    baseline = RetrievalBaseline([p.caption for p in pairs], [p.image_path for p in pairs], 64)
    images = baseline.generate(["a large red circle."])       # (1, 64, 64, 3) uint8
"""

import re

import numpy as np
from scipy import sparse


def ngrams(text):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class RetrievalBaseline:
    def __init__(self, captions, image_paths, image_size=64):
        if len(captions) != len(image_paths) or not captions:
            raise ValueError("RetrievalBaseline needs as many image paths as captions (>= 1)")
        self.captions, self.image_paths, self.image_size = list(captions), list(image_paths), image_size
        self.vocabulary = {}
        rows, cols = [], []
        for i, caption in enumerate(self.captions):
            for gram in ngrams(caption):
                rows.append(i)
                cols.append(self.vocabulary.setdefault(gram, len(self.vocabulary)))
        counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                   shape=(len(self.captions), len(self.vocabulary)))
        df = np.asarray((counts > 0).sum(0)).ravel()
        self.idf = np.log((1 + len(self.captions)) / (1 + df)) + 1.0
        self.matrix = self._normalise(counts.multiply(self.idf[None]).tocsr())

    @staticmethod
    def _normalise(m):
        norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
        return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ m

    def nearest(self, prompts):
        """Index of the nearest training caption for each prompt."""
        rows, cols = [], []
        for i, prompt in enumerate(prompts):
            for gram in ngrams(prompt):
                if gram in self.vocabulary:
                    rows.append(i)
                    cols.append(self.vocabulary[gram])
        q = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                              shape=(len(prompts), len(self.vocabulary)))
        q = self._normalise(q.multiply(self.idf[None]).tocsr())
        scores = (q @ self.matrix.T).toarray()                      # (prompts, captions)
        return scores.argmax(axis=1)

    def generate(self, prompts):
        from PIL import Image

        images = []
        for i in self.nearest(list(prompts)):
            with Image.open(self.image_paths[i]) as image:
                image = image.convert("RGB")
                if image.size != (self.image_size, self.image_size):
                    image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
                images.append(np.asarray(image))
        return np.stack(images)
