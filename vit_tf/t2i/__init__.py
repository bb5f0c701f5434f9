"""Text-to-image on the project's data: an image tokenizer, two generators, a judge.

    captions.py      captioned images from any reader (held-out colour-shape pairs left out)
    preprocessor.py  TextToImagePreprocessor: prompts -> caption ids (the project's WordPiece)
    vqvae.py         the image tokenizer: VQ-VAE with an EMA codebook (64 px -> 8x8 codes)
    maskgit.py       MaskGITBackbone (caption prefix + codes, bidirectional) and its masking
    generator.py     MaskGITTextToImage: the masked-token generator as a task
    diffusion.py     DiffusionTextToImage: the small DDIM U-Net baseline (cross-attention)
    samplers.py      confidence-ordered parallel decoding, DDIM; classifier-free guidance
    task.py          TextToImage: generate({"prompts", "negative_prompts"}, num_steps,
                     guidance_scale, seed) -> uint8 images; presets
    train.py         vit-tf t2i train: model.fit on tf.data, stage by stage
    callbacks.py     TensorBoard: sample grids, codebook usage, time budget
    parser.py        the exact scene parser (pixels -> objects)
    geneval.py       the GenEval mirror: prompt suites, checks, oracle renders, diversity
    retrieval.py     the retrieval baseline (nearest training caption's image)
    judge.py         the project's VLM as a DSG / VQAScore-style judge
    evaluate.py      vit-tf t2i eval / gate
    export.py        SavedModel: prompt strings -> PNG bytes
    config.py, cli_args.py, commands.py   the run config and the command line

Example::

    from vit_tf.t2i.task import load_text_to_image
    task = load_text_to_image("runs/t2i_maskgit")
    images = task.generate({"prompts": ["a large red circle."]}, num_steps=12, seed=0)
"""
