"""The training recipes that go with the presets (`core.train` takes them as defaults):
plain data, importable without Keras (the Dataset page sizes a search for label errors by
the quick preset's without importing TensorFlow)."""

# Training defaults that go with a preset; any flag given on the command line wins.
# seed: the classic Keras recipe (Adam 1e-3, batch 128, 20 epochs) is TrainConfig's own.
# Every conv is followed by batch norm, so its scale does not matter, only its direction:
# the decoupled decay (lr x wd = 1e-2 per step at the peak) keeps the weight norms small and
# the effective step large. With 0.2 / 0.9 / 5e-4 (1e-4 per step) the quick preset reached
# 77.9% in 3 epochs, with these 81.5% (docs/BENCHMARKS.md, recipe experiments).
_SPEED_RUN = dict(
    optimizer="nesterov",
    learning_rate=1.0,
    momentum=0.85,
    weight_decay=0.01,
    schedule="onecycle",
    warmup_epochs=0.5,
    label_smoothing=0.2,
    batch_size=512,
    augment="flip,crop_pad=2",
    lookahead=True,
)
RECIPES = {
    "seed": {},
    "vgg_bn": dict(
        optimizer="nesterov",
        learning_rate=0.05,
        weight_decay=5e-4,
        schedule="onecycle",
        epochs=30,
        label_smoothing=0.1,
        augment="flip,crop_pad=4",
    ),
    # 3 epochs: 80.4 and 80.6% in 74-86 s; with the whitening bias trained in the first,
    # 81.2 and 81.4% in 83-91 s (docs/BENCHMARKS.md, session 11).
    "quick": dict(_SPEED_RUN, epochs=3, whiten_bias_epochs=1, precision="auto"),
    # 12 epochs on 2 cores, the first 6 on 24-pixel crops (0.6x the time of a whole-image
    # epoch): 89.5-90.2% with flip TTA (mean 89.9%, seven runs) in 7.4-14.4 minutes (this
    # VM's speed varies); the whitening bias trained for the first 3 epochs, as airbench
    # does: 89.8-90.4% (mean 90.13%, seven runs) in 8.0-9.4 minutes (docs/BENCHMARKS.md,
    # sessions 7-11).
    "fast": dict(
        _SPEED_RUN,
        epochs=12,
        small_crop_share=0.5,
        small_crop_size=24,
        whiten_bias_epochs=3,
        precision="auto",
    ),
    # 2.55x the fast net's FLOPs per image. 24 whole-image epochs: 90.3% (91.1% flip TTA) in
    # 66 minutes; 40 epochs, the first 20 on 24-pixel crops (65 s each, whole images 111 s)
    # and the whitening bias trained for 3: 91.0-91.6% (92.0% flip+shift, two runs) in 59
    # minutes (docs/BENCHMARKS.md, sessions 6 and 13).
    "wide": dict(
        _SPEED_RUN,
        epochs=40,
        warmup_epochs=2.0,
        augment="flip,crop_pad=4,cutout=12",
        small_crop_share=0.5,
        small_crop_size=24,
        whiten_bias_epochs=3,
        precision="auto",
    ),
    "mobilenet": dict(learning_rate=1e-3, epochs=10, image_size=96, augment="flip"),  # Adam
}
