"""Converters of pretrained weights shipped in pip packages into what vit_tf loads.

``vit_tf.pretrained.CATALOG`` names each converter as ``module:function``; they run once, when
a part is first asked for, and write into the cache (see ``vit_tf.pretrained``). Readers of the
source containers (``torch_pickle``) need neither torch nor any other framework.
"""
