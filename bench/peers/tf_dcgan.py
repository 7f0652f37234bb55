"""The TensorFlow DCGAN tutorial's training step (tensorflow.org/tutorials/generative/dcgan), timed: run inside the
TensorFlow virtual environment that bench/speed.py makes, never imported by counterfeit.

    python bench/peers/tf_dcgan.py IMAGES.npy --steps 20 --warmup 3

The tutorial's models and update: G = Dense(7*7*256, no bias) - BN - LeakyReLU - Conv2DTranspose 128/64/1 (5x5,
strides 1/2/2, BN + LeakyReLU between, tanh out); D = Conv2D 64/128 (5x5, stride 2) - LeakyReLU - Dropout 0.3 -
Dense(1); Adam 1e-4 each; a @tf.function step with two GradientTapes over one forward pass. IMAGES.npy is a
(N, 28, 28, 1) float32 array in [-1, 1]; each step takes the next batch of 256. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.keras import layers  # noqa: E402

BATCH, NOISE = 256, 100


def generator():
    return tf.keras.Sequential([
        layers.Input((NOISE,)),
        layers.Dense(7 * 7 * 256, use_bias=False), layers.BatchNormalization(), layers.LeakyReLU(0.3),
        layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
        layers.BatchNormalization(), layers.LeakyReLU(0.3),
        layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
        layers.BatchNormalization(), layers.LeakyReLU(0.3),
        layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"),
    ])


def discriminator():
    return tf.keras.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"), layers.LeakyReLU(0.3), layers.Dropout(0.3),
        layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"), layers.LeakyReLU(0.3), layers.Dropout(0.3),
        layers.Flatten(), layers.Dense(1),
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("images")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    images = np.load(args.images).astype(np.float32)
    G, D = generator(), discriminator()
    bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    opt_g, opt_d = tf.keras.optimizers.Adam(1e-4), tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(batch):
        noise = tf.random.normal([BATCH, NOISE])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            fake = G(noise, training=True)
            real_out = D(batch, training=True)
            fake_out = D(fake, training=True)
            gen_loss = bce(tf.ones_like(fake_out), fake_out)
            disc_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
        opt_g.apply_gradients(zip(gen_tape.gradient(gen_loss, G.trainable_variables), G.trainable_variables))
        opt_d.apply_gradients(zip(disc_tape.gradient(disc_loss, D.trainable_variables), D.trainable_variables))
        return gen_loss, disc_loss

    batches = [tf.constant(images[i * BATCH:(i + 1) * BATCH]) for i in range(len(images) // BATCH)]
    for i in range(args.warmup):
        train_step(batches[i % len(batches)])
    times = []
    for i in range(args.steps):
        t = time.perf_counter()
        g, d = train_step(batches[i % len(batches)])
        float(g)  # the step's work is done when its loss is read
        times.append(time.perf_counter() - t)
    print(json.dumps({"tf": tf.__version__, "s_per_step": float(np.median(times)), "mean_s": float(np.mean(times)),
                      "steps": args.steps, "loss_g": float(g), "loss_d": float(d),
                      "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
