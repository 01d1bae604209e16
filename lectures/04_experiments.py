# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 04 Experiments: the evaluation protocol, and one benchmark for every model
#
# *Reading time 70 min, run time about 40 s on a 2-core laptop CPU (quick profile). Part 1
# (sections 1-6) examines the metrics with no generative model at all; part 2 (sections 7-12) is
# the course's results chapter: every model of the zoo trained at matched compute on the 8x8
# digits and measured by one harness (`python -m unigm.bench images`, read here from its
# committed output), two of its rows retrained live, and two course checkpoints loaded. The
# full profile (`UNIGM_PROFILE=full`) runs the same harness on MNIST.*
#
# **Learning goals.** After this notebook you can
# 1. explain what the course's judge network is, why it is trained on the train split only, and
#    read every image metric next to its **data-vs-data floor** and that floor's spread;
# 2. measure a set of images with the Fréchet distance, precision, recall, density, coverage,
#    1-NN two-sample accuracy and an Inception-style score, and say which failure each one sees
#    (noise, blur, dropped classes, copied training images) and which it misses;
# 3. derive bits per dimension of discrete images from a density of dequantized, rescaled data,
#    including the change-of-variables term, and check it against a model with a closed form;
# 4. explain why raw training losses of different families cannot be compared, and name what can;
# 5. read a benchmark at matched compute: quality next to its floor and its seed-to-seed spread,
#    cost to train and to sample, and say which differences are real;
# 6. compare samplers at equal network evaluations (steps against quality) and likelihood models
#    in bits/dim against the independent-pixel baseline, and explain why the two rankings differ;
# 7. read a VAE family's latent space (PCA, nearest-neighbour class accuracy, decoded
#    interpolations) and fit a scaling law's slope on log-log axes.
#
# **Prerequisites.** Lecture 00 (noise floors, $W_2$ against fresh data), lecture 01 section 4
# (the 8x8 digits and their dequantization); Gaussian densities, the change of variables for
# densities, Jensen's inequality.
#
# **The story.** Before a metric ranks models it has to pass an exam: show it data whose defect
# we made ourselves, of a size we chose, and check that the number moves the right way, by the
# right amount, and that it *does not* move for defects it is not meant to see. A metric that
# has not passed this exam is a random number with a name. We give the exam to every metric of
# `unigm.metrics` on the 8x8 digits, with no generative model at all: fresh data plays the
# perfect model, and corrupted, mode-dropped or copied data play the broken ones. Part 2 then
# uses the metrics that passed to rank every model of the course, and asks what the ranking
# says about the families: which distance they minimise, which path they follow, what they cost.

# %%
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from unigm import bench_images, data, judge, metrics, runtime
from unigm.course import checkpoints
from unigm.course.figures import check_readable, markdown_table, use_course_style
from unigm.course.widgets import show_source

setup = runtime.setup(seed=0)
ROOT = Path(bench_images.__file__).resolve().parents[2]  # the repository: results/ and checkpoints/
use_course_style()
LEVELS, N = data.DIGIT_LEVELS, 270  # 17 grey levels; 270 images per set, the size of the test split
train, val, test = data.digits("train"), data.digits("val"), data.digits("test")
print(f"digits: {len(train)} train, {len(val)} val, {len(test)} test images of shape {tuple(train.images.shape[1:])}")
setup

# %% tags=["helpers"]
# Helpers of this notebook only (collapsed on the site): the two corruptions and one figure layout.
def add_noise(images, std, seed=0):
    """Gaussian pixel noise of standard deviation `std` (in intensity units, images in [0, 1]), clipped to [0, 1]."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images + std * noise).clamp(0, 1)


def blur(images, width):
    """Gaussian blur of standard deviation `width` pixels: a normalised 7x7 kernel, mirrored borders.
    A convex combination of pixels, so the result stays in [0, 1]."""
    if width == 0:
        return images
    r = torch.arange(-3.0, 4.0)
    k = torch.exp(-r**2 / (2 * width**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :])[None, None]  # (1, 1, 7, 7), sums to 1
    return F.conv2d(F.pad(images, (3, 3, 3, 3), mode="reflect"), kernel)


NAMES = metrics.IMAGE_METRICS  # FD, precision, recall, density, coverage, 1-NN, IS, classes covered
LABEL = {"frechet_distance": "Fréchet distance", "precision": "precision", "recall": "recall",
         "density": "density", "coverage": "coverage", "nn1_accuracy": "1-NN accuracy",
         "inception_score": "IS (judge)", "classes_covered": "classes covered"}
GOOD = {"frechet_distance": "lower is better", "nn1_accuracy": "0.5 is ideal", "density": "about 1 is ideal"}
YMAX = {"precision": 1.05, "recall": 1.05, "coverage": 1.05, "nn1_accuracy": 1.05, "density": 1.3,
        "inception_score": 10.5, "classes_covered": 10.5}


def plot_metric_curves(x, qualities, xlabel, floor_draws, title, reverse=False):
    """One panel per metric: the metric of each set against x, the floor (dashed) and the range
    of several floor draws (grey band)."""
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    for ax, name in zip(axes.flat, NAMES):
        ax.plot(x, [getattr(q.model, name) for q in qualities], "o-", label="measured set")
        ax.axhspan(min(floor_draws[name]), max(floor_draws[name]), color="0.5", alpha=0.25, label="floor, 5 draws")
        ax.axhline(getattr(qualities[0].floor, name), color="k", ls="--", lw=1.5, label="floor")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(LABEL[name])
        ax.set_title(GOOD.get(name, "higher is better"))
        ax.set_ylim(0, YMAX.get(name, ax.get_ylim()[1]))  # rates on a common scale, so that flat looks flat
        if reverse:
            ax.invert_xaxis()
    axes.flat[0].legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The yardstick: a judge, seven metrics and their floors
#
# **Intuition.** On two moons (lecture 00) we compared point clouds directly with $W_2$. A digit
# is a point in 64 dimensions, and with a few hundred images per set, distances between raw
# pixels say little about what a person sees: a digit shifted by one pixel is far from itself
# in pixel space. The standard answer (Heusel et al. 2017) is to compare images in the
# **feature space of a classifier**, where images of the same digit written differently sit
# close together. Papers use Inception-v3 trained on ImageNet; offline, on a CPU and for 8x8
# images, we train our own: the **judge**, a small MLP whose penultimate layer (128 numbers per
# image) is the space of every distance below, and whose class probabilities give the
# Inception-style score and the class histogram.
#
# The judge is trained on the **train split only**, the same images the generative models
# train on (600 Adam steps on freshly dequantized minibatches, every random draw from one seeded
# generator, so the weights are the same on every machine; they are cached on disk under a hash
# of the config and the data). The test split is then unseen by both: it gives an honest
# accuracy for the judge and serves as the reference set every sample set is compared with. A
# judge that had also learned the test digits would measure models against its own memory of
# the very images they are compared with.
#
# **Predict.** A two-layer MLP on 8x8 digits, trained for about a second: what accuracy on the
# 270 test digits? Above 95%? Above 99%?

# %%
judge_digits = judge.load("digits")  # trained once per machine, then read from the disk cache
print(judge_digits)
print(f"feature dimension {judge_digits.feature_dim}; test accuracy {judge_digits.test_accuracy:.4f} "
      f"({round((1 - judge_digits.test_accuracy) * len(test))} of {len(test)} test digits misclassified)")

# %%
shown = data.dequantize(test.images[:20], LEVELS, torch.Generator().manual_seed(0))
probs = judge_digits.predict_proba(shown)
fig_judge, axes = plt.subplots(2, 10, figsize=(16, 4))
for ax, image, p, label in zip(axes.flat, shown, probs, test.labels[:20]):
    ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{p.argmax().item()}: {p.max().item():.2f}", color="k" if p.argmax() == label else "C3")
    ax.axis("off")
fig_judge.suptitle("judge's prediction and its probability on 20 test digits")
fig_judge.tight_layout()
check_readable(fig_judge)
plt.show()

# %% [markdown]
# *Figure: twenty dequantized test digits with the judge's predicted class and the probability
# it gives it; a red title marks a mistake. Look at how confident it is when right, and how
# unsure on the digit it gets wrong (if one is shown): the Inception-style score below rewards
# confident, varied predictions, which is meaningful only because the judge is confident on
# real digits.*
#
# **The metrics, in one line each** (all on judge features of $N$ reference images and $M$
# sample images, `show_source` below for the exact code):
# - **Fréchet distance (FD)** (Heusel et al. 2017): fit a Gaussian to each feature set and take
#   $\mathrm{FD} = |\mu_a - \mu_b|^2 + \operatorname{tr}\big(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2}\big)$,
#   the squared $W_2$ between the two Gaussians. In squared feature units: an FD here is **not**
#   comparable with an FID in a paper (other network, 128 features instead of 2,048).
# - **Precision, recall** (Kynkäänniemi et al. 2019): draw a ball around each point reaching its
#   $k$-th nearest neighbour in its own set. Precision is the share of samples inside some real
#   ball (fidelity), recall the share of real points inside some sample ball (diversity).
# - **Density, coverage** (Naeem et al. 2020): density counts how many real balls contain each
#   sample (about 1 for fresh data, more when samples crowd dense regions); coverage is the share
#   of real balls that contain at least one sample. Both use only the real balls, which are not
#   inflated by outlying samples.
# - **1-NN accuracy** (Lopez-Paz & Oquab 2017): pool the two sets, classify each point by the set
#   of its nearest other point. About 0.5 when the sets are alike, 1 when they are separable.
# - **IS** (Salimans et al. 2016): $\exp \mathbb{E}_x \mathrm{KL}(p(y\mid x)\,\|\,p(y))$ from the
#   judge's probabilities: 1 when every image gets the same prediction, 10 when predictions are
#   confident and spread evenly over the 10 classes. **Classes covered**: classes that receive at
#   least a tenth of their fair share of the samples.

# %%
show_source(metrics.prdc)

# %% [markdown]
# **The algebra, checked.** Two consequences of the FD formula we can verify on real judge
# features: translating a set by a vector $c$ leaves its covariance unchanged, so
# $\mathrm{FD}(a, a + c) = |c|^2$; scaling it by $s$ gives $\mu_b = s\mu_a$, $C_b = s^2 C_a$, so
# $\mathrm{FD}(a, s a) = (1 - s)^2 (|\mu_a|^2 + \operatorname{tr} C_a)$. And the IS of confident,
# perfectly balanced predictions over $C$ classes is $C$; of identical predictions, 1.

# %%
features_test = judge_digits.features(data.dequantize(test.images, LEVELS, torch.Generator().manual_seed(0))).double()
shift = torch.randn(features_test.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
mu, cov = features_test.mean(0), torch.cov(features_test.T)
expected_scaled = 0.7**2 * (mu @ mu + cov.trace()).item()
print(f"FD(a, a + c) = {metrics.frechet_distance(features_test, features_test + shift):.6f}, |c|^2 = {(shift @ shift).item():.6f}")
print(f"FD(a, 0.3 a) = {metrics.frechet_distance(features_test, 0.3 * features_test):.4f}, "
      f"(1 - s)^2 (|mu|^2 + tr C) = {expected_scaled:.4f}")
one_hot = torch.eye(10).repeat(27, 1)  # 270 confident predictions, 27 per class
print(f"IS of balanced one-hot predictions = {metrics.inception_score(one_hot):.4f}; "
      f"of identical ones = {metrics.inception_score(one_hot[:1].repeat(270, 1)):.4f}")

# %% [markdown]
# **The floor.** A perfect generative model produces fresh digits: new draws from the data
# distribution. The closest we have are the train images, which the reference (test) set has
# never met. So `metrics.image_quality` scores every sample set next to 270 dequantized train
# images scored the same way against the same test split: the **floor**, what a perfect model of
# this size would get. Every number in this course is read next to its floor, never alone.
#
# **Predict.** Two sets of real digits: is their FD zero? Their precision and recall exactly 1?
# Their 1-NN accuracy exactly 0.5?

# %%
fresh = data.dequantize(train.images[torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:N]],
                        LEVELS, torch.Generator().manual_seed(2))  # 270 train digits, the "perfect model"
quality = metrics.image_quality(fresh, seed=0)
print(quality)

# %% [markdown]
# None of them: two finite samples never coincide, so FD is a few squared units above zero and
# the ball-based rates sit a little below 1. The floor is itself one random draw (which 270
# train images, which dequantization noise), so we also need its **spread**.
#
# **Predict.** Over five draws, will the floor's 1-NN accuracy scatter around 0.5? And the
# val split, 270 digits that neither the judge nor any model has seen: will it score like the
# train images?

# %%
floor_scores, val_scores = [], []
for seed in range(5):  # each seed redraws the test dequantization and the floor's train images
    q = metrics.image_quality(data.dequantize(val.images, LEVELS, torch.Generator().manual_seed(10 + seed)), seed=seed)
    floor_scores.append(q.floor)
    val_scores.append(q.model)
floor_draws = {name: [getattr(score, name) for score in floor_scores] for name in NAMES}
val_draws = {name: [getattr(score, name) for score in val_scores] for name in NAMES}
rows = ["| metric | floor: train vs test, mean ± sd of 5 draws | val vs test, mean ± sd |", "|---|---|---|"]
for name in NAMES:
    rows.append(f"| {LABEL[name]} | {np.mean(floor_draws[name]):.3f} ± {np.std(floor_draws[name]):.3f} | "
                f"{np.mean(val_draws[name]):.3f} ± {np.std(val_draws[name]):.3f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The spread of the floor is the **resolution** of each metric at 270 images: two models whose
# scores differ by less than it are not distinguished. The 1-NN accuracy of train against test
# comes out *below* 0.5, which deserves a closer look. Its value under "no difference" is
# $(N-1)/(2N-1) = 0.498$ for two sets of $N$ (a point has one fewer neighbour in its own set),
# not far enough below 0.5 to explain it. The cell below measures where the nearest
# neighbours are, in judge space and in pixel space, for the train and the val images.

# %%
pixel_nn1 = {"train": [], "val": []}
nearest = {"test -> nearest other test": [], "test -> nearest train": [], "test -> nearest val": []}
for seed in range(5):
    g = torch.Generator().manual_seed(20 + seed)
    t = data.dequantize(test.images, LEVELS, g)
    sets = {"train": data.dequantize(train.images[torch.randperm(len(train), generator=g)[:N]], LEVELS, g),
            "val": data.dequantize(val.images, LEVELS, g)}
    ft = judge_digits.features(t)
    d_tt = torch.cdist(ft, ft).fill_diagonal_(math.inf)
    nearest["test -> nearest other test"].append(d_tt.min(1).values.median().item())
    for name, images in sets.items():
        pixel_nn1[name].append(metrics.nn1_accuracy(t.flatten(1), images.flatten(1)))
        nearest[f"test -> nearest {name}"].append(torch.cdist(ft, judge_digits.features(images)).min(1).values.median().item())
print(f"1-NN accuracy against test, judge space: train {np.mean(floor_draws['nn1_accuracy']):.3f}, "
      f"val {np.mean(val_draws['nn1_accuracy']):.3f} (means of 5 draws)")
print(f"1-NN accuracy against test, pixel space: train {np.mean(pixel_nn1['train']):.3f}, val {np.mean(pixel_nn1['val']):.3f}")
for name, values in nearest.items():
    print(f"median judge-space distance {name:<27} {np.mean(values):.2f}")
all_fresh_nn1 = floor_draws["nn1_accuracy"] + val_draws["nn1_accuracy"]
print(f"1-NN accuracy of fresh data against test, all 10 draws: {min(all_fresh_nn1):.3f} to {max(all_fresh_nn1):.3f}")

# %% [markdown]
# In judge space a test digit's nearest train digit is slightly closer than its nearest fellow
# test digit, so test points often pick a train neighbour and 1-NN falls below 0.5; in pixel
# space, or with the val split, it does not. One explanation consistent with these numbers: the
# judge was fitted to the train images, and its feature map is shaped around them. A new digit
# lands near the training digits it resembles, because that is what the network learned to do
# with them, so train images are, in this space, a little *better than fresh data*. The table
# above shows the same effect in the judge's probabilities: its IS is higher on train digits
# than on val digits, by many times the spread of either, because a network is more confident
# on the images it was trained on. Part of the 1-NN gap is also plain luck of the draw, as its
# spread shows. Two lessons. First, read 1-NN against
# its floor and its spread (the range printed last), not against the textbook 0.5. Second, a
# model that returns training images plays on the judge's home ground; section 4 shows what
# catches it.
#
# The figure puts the five draws of each metric side by side.

# %%
fig_floor, axes = plt.subplots(2, 4, figsize=(17, 7))
for ax, name in zip(axes.flat, NAMES):
    for position, (label, draws) in enumerate([("train vs test", floor_draws), ("val vs test", val_draws)]):
        ax.plot(np.full(5, position) + np.linspace(-0.12, 0.12, 5), draws[name], "o", color=f"C{position}", ms=8)
    ax.set_xticks([0, 1], ["train\nvs test", "val\nvs test"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_xlabel("sets compared")
    ax.set_ylabel(LABEL[name])
    if name == "nn1_accuracy":
        ax.axhline(0.5, color="k", ls=":", lw=1.5)
fig_floor.suptitle("data vs data: each metric over 5 draws (dotted: 1-NN's textbook 0.5)")
fig_floor.tight_layout()
check_readable(fig_floor)
plt.show()

# %% [markdown]
# *Figure: each metric for two kinds of "perfect model", five draws each: 270 train digits and
# the 270 val digits, both against the test split. Look at the vertical spread of each group
# (the resolution of the metric) and at the gap between the groups (how much the choice of
# fresh data shifts the floor). No panel is at its ideal value: precision, recall and coverage
# below 1, FD above 0.*

# %% tags=["checks"]
assert judge_digits.test_accuracy >= 0.95, judge_digits.test_accuracy
assert abs(metrics.frechet_distance(features_test, features_test + shift) - (shift @ shift).item()) < 1e-6 * (shift @ shift).item()
assert abs(metrics.frechet_distance(features_test, 0.3 * features_test) - expected_scaled) < 1e-6 * expected_scaled
assert abs(metrics.inception_score(one_hot) - 10) < 1e-9 and abs(metrics.inception_score(one_hot[:1].repeat(270, 1)) - 1) < 1e-9
for draws in (floor_draws, val_draws):  # fresh data sits near the ideal of every metric
    assert max(draws["frechet_distance"]) < 15
    assert min(draws["precision"]) > 0.9 and min(draws["recall"]) > 0.9 and min(draws["coverage"]) > 0.9
    assert all(0.8 < d < 1.25 for d in draws["density"])
    assert all(0.38 < a < 0.62 for a in draws["nn1_accuracy"])
    assert min(draws["inception_score"]) > 9 and min(draws["classes_covered"]) == 10
assert np.mean(floor_draws["nn1_accuracy"]) < np.mean(pixel_nn1["train"])  # train looks closer to test in judge space
assert all(0.4 < a < 0.6 for a in pixel_nn1["train"] + pixel_nn1["val"])
print("section 1 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Data vs corrupted data: does every metric see damage?
#
# **Intuition.** Take the 270 fresh train digits (a perfect model) and damage them by a known,
# growing amount: Gaussian pixel noise of standard deviation up to 0.7 of the full intensity
# range, and Gaussian blur up to 1.8 pixels wide. A trustworthy metric moves away from its floor
# steadily as the damage grows. Level 0 is the fresh data itself.

# %%
NOISE_STD = [0.0, 0.2, 0.35, 0.5, 0.7]  # intensity units (images in [0, 1])
BLUR_WIDTH = [0.0, 0.8, 1.1, 1.4, 1.8]  # pixels
fig_examples, axes = plt.subplots(2, 5, figsize=(12, 5.4))
for ax, std in zip(axes[0], NOISE_STD):
    ax.imshow(add_noise(fresh[:1], std, seed=3)[0, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"noise std {std}")
    ax.axis("off")
for ax, width in zip(axes[1], BLUR_WIDTH):
    ax.imshow(blur(fresh[:1], width)[0, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"blur {width} px")
    ax.axis("off")
fig_examples.tight_layout()
check_readable(fig_examples)
plt.show()

# %% [markdown]
# *Figure: one train digit at each corruption level (top: noise, bottom: blur). By eye the class
# survives moderate noise longer than wide blur, on images only 8 pixels across.*
#
# **Predict.** Noise spreads the digits out in every direction. Which of precision and recall
# will fall? Could one of them *rise*?

# %%
noisy_q = [metrics.image_quality(add_noise(fresh, std, seed=3), seed=0) for std in NOISE_STD]
display(Markdown(metrics.ImageQuality.header("noise std") + "\n" +
                 "\n".join(q.row(f"{std}") for std, q in zip(NOISE_STD, noisy_q))))

# %%
fig_noise = plot_metric_curves(NOISE_STD, noisy_q, "noise std (intensity units)", floor_draws,
                               "fresh digits + Gaussian noise: every metric against the noise level")
check_readable(fig_noise)
plt.show()

# %% [markdown]
# *Figure: each metric of the noisy digits against the noise standard deviation, with the floor
# (dashed) and the range of five floor draws (grey). Look at recall, the one quality panel that
# does not move away from its floor.* FD and 1-NN accuracy rise; precision, density, coverage
# and IS fall, leaving the grey band of fresh data within the first steps. Recall stays near 1:
# noisy samples are spread out, so the $k$-NN balls around them are large and swallow the real
# points. This is the known weak spot of $k$-NN recall that motivated coverage (Naeem et al.
# 2020): coverage uses only the *real* balls, and it does fall. A metric for diversity that
# outliers can inflate has to be read together with one that they cannot. (Classes covered stays
# at 10, correctly: the judge still finds all ten digits among the noisy images. It counts
# classes; it does not grade them.)
#
# **Predict.** Blur removes the strokes' sharp edges but keeps their place. Will IS fall faster
# or slower than under noise? And recall?

# %%
blurred_q = [metrics.image_quality(blur(fresh, width), seed=0) for width in BLUR_WIDTH]
display(Markdown(metrics.ImageQuality.header("blur px") + "\n" +
                 "\n".join(q.row(f"{width}") for width, q in zip(BLUR_WIDTH, blurred_q))))

# %%
fig_blur = plot_metric_curves(BLUR_WIDTH, blurred_q, "blur width (pixels)", floor_draws,
                              "fresh digits, blurred: every metric against the blur width")
check_readable(fig_blur)
plt.show()

# %% [markdown]
# *Figure: the same panels for blur. Look at recall, almost 0 from 1.1 pixels on, with
# coverage following, and at the Fréchet distance, several times its value for the strongest
# noise.* Blurred digits all look alike (smooth blobs), so they fill a small region of feature
# space: their own balls are small (recall falls, unlike for noise), they miss most real balls
# (coverage falls), and the judge hesitates between classes (IS falls far faster than under
# noise). Here every metric moves monotonically.

# %% tags=["checks"]
# Every metric must move away from the data, step by step: in its "worse" direction, allowing a
# step back no larger than TOL (the floor's resolution) for the rates, and by a clear total.
WORSE = {"frechet_distance": +1, "precision": -1, "recall": -1, "density": -1, "coverage": -1,
         "nn1_accuracy": +1, "inception_score": -1}
TOL = 0.02
for corruption, qualities in [("noise", noisy_q), ("blur", blurred_q)]:
    for name, sign in WORSE.items():
        if corruption == "noise" and name == "recall":
            continue  # the documented exception, checked below
        v = np.array([getattr(q.model, name) for q in qualities])
        steps = sign * np.diff(v)
        if name in ("frechet_distance", "inception_score"):
            assert (steps > 0).all(), (corruption, name, v)  # strictly monotone
        else:
            assert (steps > -TOL).all(), (corruption, name, v)
        if name == "frechet_distance":
            assert v[-1] > 2 * v[0], (corruption, v)  # at least doubled
        elif name == "inception_score":
            assert v[-1] < 0.8 * v[0], (corruption, v)  # down by a fifth or more
        else:
            assert sign * (v[-1] - v[0]) > 0.1, (corruption, name, v)  # rates: a clear absolute change
        print(f"{corruption:>5} {LABEL[name]:<17} {' -> '.join(f'{x:.3g}' for x in v)}")
recall_noise = [q.model.recall for q in noisy_q]
coverage_noise = [q.model.coverage for q in noisy_q]
assert min(recall_noise) > 0.85 and coverage_noise[-1] < coverage_noise[0] - 0.2  # recall fooled, coverage not
assert noisy_q[-1].model.frechet_distance > 3 * noisy_q[0].floor.frechet_distance
assert blurred_q[-1].model.frechet_distance > 3 * noisy_q[-1].model.frechet_distance
print("section 2 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Data vs mode-dropped data: fidelity without diversity
#
# **Intuition.** Mode collapse, the GAN failure of lecture 01, produces perfect-looking samples
# of too few kinds. We imitate it exactly: keep only $K$ of the 10 classes (a fixed random order
# of classes, the first $K$ kept) and draw 270 train digits from those classes. Every image is a
# real digit, so quality per image is perfect; only variety is missing.
#
# **Predict.** Keeping 5 of 10 classes: where do precision, recall and coverage land? What is
# the IS of a set that holds 5 classes in equal shares?

# %%
CLASSES_KEPT = [10, 7, 5, 3]
g = torch.Generator().manual_seed(4)
class_order = torch.randperm(10, generator=g)
dropped_q, dropped_sets = [], {}
for k in CLASSES_KEPT:
    pool = torch.isin(train.labels, class_order[:k]).nonzero().squeeze(1)  # train digits of the kept classes
    chosen = pool[torch.randperm(len(pool), generator=g)[:N]]  # without replacement: >= 366 available
    dropped_sets[k] = data.dequantize(train.images[chosen], LEVELS, g)
    dropped_q.append(metrics.image_quality(dropped_sets[k], seed=0))
print("class order (the first K are kept):", class_order.tolist())
display(Markdown(metrics.ImageQuality.header("classes kept") + "\n" +
                 "\n".join(q.row(str(k)) for k, q in zip(CLASSES_KEPT, dropped_q))))

# %%
fig_drop = plot_metric_curves(CLASSES_KEPT, dropped_q, "classes kept", floor_draws,
                              "real digits from fewer classes: every metric against the classes kept", reverse=True)
check_readable(fig_drop)
plt.show()

# %% [markdown]
# *Figure: each metric against the number of classes kept (10 on the left, 3 on the right).
# Look at precision and density, flat at their floors, against recall and coverage, which fall
# in step with the share of classes kept.* Recall and coverage land close to $K/10$, the share of
# real digits whose class is still produced; IS lands near $K$, the number of classes a confident
# judge sees in equal shares; FD and 1-NN grow. A single number mixing fidelity and diversity
# would have hidden this; the pair (precision, recall) or (density, coverage) names it: *good
# images, too few kinds*. The class histogram shows it directly.
#
# **Predict.** In the judge's class histogram of the 5-class set, how many bars are empty? Will
# any sample be counted in a dropped class?

# %%
fig_hist, axes = plt.subplots(1, len(CLASSES_KEPT), figsize=(16, 3.6), sharey=True)
for ax, k, q in zip(axes, CLASSES_KEPT, dropped_q):
    ax.bar(range(10), q.model.class_histogram, color="C0")
    ax.set_xticks(range(10))
    ax.set_xlabel("class predicted by the judge")
    ax.set_ylabel("samples")
    ax.set_title(f"{k} classes kept")
fig_hist.tight_layout()
check_readable(fig_hist)
plt.show()

# %% [markdown]
# *Figure: the judge's class histogram of each mode-dropped set of 270 images. Look at the
# empty bars: the dropped classes, counted by `classes covered`. A sample counted in a dropped
# class would be a mistake of the judge, rare at its test accuracy.*

# %% tags=["checks"]
precision = np.array([q.model.precision for q in dropped_q])
recall = np.array([q.model.recall for q in dropped_q])
coverage = np.array([q.model.coverage for q in dropped_q])
share = np.array(CLASSES_KEPT) / 10
assert (np.diff(recall) < -0.1).all() and (np.diff(coverage) < -0.1).all(), (recall, coverage)  # fall, clearly
assert (np.abs(recall - share) < 0.15).all() and (np.abs(coverage - share) < 0.15).all(), (recall, coverage)  # about K/10
assert (precision > dropped_q[0].floor.precision - 0.05).all(), precision  # precision does not fall
assert all(0.85 < q.model.density < 1.2 for q in dropped_q)
assert [q.model.classes_covered for q in dropped_q] == CLASSES_KEPT
assert all(abs(q.model.inception_score - k) < 0.6 for k, q in zip(CLASSES_KEPT, dropped_q))
assert (np.diff([q.model.frechet_distance for q in dropped_q]) > 0).all()
print("section 3 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Data vs memorised training images: what catches a copy?
#
# **Intuition.** A model with enough capacity can learn its training set by heart and return
# it. Those samples are real digits, as varied as the data: by any comparison with the test set
# they are perfect, because they *are* the data (the floor itself is made of train images). The
# defect is not in the samples' distribution but in their relation to the **training** set: each
# one has a twin there. Here the memoriser's training set is 270 train digits $R$ (as many as
# the samples, so that 0.5 stays the no-difference value of 1-NN); its samples
# are copies of them, re-dequantized and with a little Gaussian noise (std 0.01), and a partial
# memoriser returns a fraction $f$ of copies and fills the rest with new digits (the val split).
#
# **Predict.** Against the test split, will the copies' FD be worse than that of new digits?
# And the 1-NN accuracy of the copies against $R$: near 0.5, near 1, or near 0?

# %%
g = torch.Generator().manual_seed(5)
memorised = torch.randperm(len(train), generator=g)[:N]  # indices of R in the train split
R = data.dequantize(train.images[memorised], LEVELS, g)
copies = (data.dequantize(train.images[memorised], LEVELS, g) + 0.01 * torch.randn(R.shape, generator=g)).clamp(0, 1)
new_digits = data.dequantize(val.images, LEVELS, g)
features_R = judge_digits.features(R)
FRACTIONS = [0.0, 0.25, 0.5, 0.75, 1.0]
memo_q, nn1_train = [], []
for f in FRACTIONS:
    m = round(f * N)
    samples = torch.cat([copies[:m], new_digits[m:]])
    memo_q.append(metrics.image_quality(samples, seed=0))  # against the test split, as always
    nn1_train.append(metrics.nn1_accuracy(features_R, judge_digits.features(samples)))  # against the training images
display(Markdown(metrics.ImageQuality.header("fraction copied") + "\n" +
                 "\n".join(q.row(f"{f}") for f, q in zip(FRACTIONS, memo_q))))
print("1-NN accuracy against the memorised training images R:", ", ".join(f"{a:.3f}" for a in nn1_train))

# %% [markdown]
# Against the test split, copying is invisible: every column stays near its floor, whatever the
# fraction copied. The FD of full copies even comes out a little *lower* than that of new digits,
# in the direction of the judge's home-ground effect of section 1, though within the floor's
# spread. Against the training images the picture flips: each
# copy's nearest neighbour is its own original, and each original's nearest neighbour is its
# copy, so both are misclassified and the 1-NN accuracy falls from about 0.5 to 0 in proportion
# to the fraction copied. In practice one does not know which training images a model might
# copy, so the test is run against the whole training split: the distance from each sample to
# its nearest training image, compared with the same distance for new digits.
#
# **Predict.** In pixel space (intensity units, Euclidean over 64 pixels), how far is a new digit
# from the nearest of the 1,257 training digits? And a copy?

# %%
train_centres = (train.images.float() + 0.5) / LEVELS  # each train image at the centre of its bins
d_new = torch.cdist(new_digits.flatten(1), train_centres.flatten(1)).min(1).values
d_copy = torch.cdist(copies.flatten(1), train_centres.flatten(1)).min(1).values
print(f"distance to the nearest training image: new digits median {d_new.median():.3f} (min {d_new.min():.3f}), "
      f"copies median {d_copy.median():.3f} (max {d_copy.max():.3f})")

fig_memo, axes = plt.subplots(1, 3, figsize=(17, 4.4))
bins = np.linspace(0, max(d_new.max().item(), d_copy.max().item()) * 1.05, 40)
axes[0].hist(d_new.numpy(), bins=bins, alpha=0.7, label="new digits (val)")
axes[0].hist(d_copy.numpy(), bins=bins, alpha=0.7, label="copies of train digits")
axes[0].set_xlabel("distance to nearest training image (L2 over 64 pixels)")
axes[0].set_ylabel("images")
axes[0].legend()
axes[1].plot(FRACTIONS, [q.model.frechet_distance for q in memo_q], "o-", label="samples vs test")
axes[1].axhspan(min(floor_draws["frechet_distance"]), max(floor_draws["frechet_distance"]), color="0.5", alpha=0.25,
                label="floor, 5 draws")
axes[1].set_ylim(0, 2 * max(floor_draws["frechet_distance"]))
axes[1].set_xlabel("fraction of samples copied")
axes[1].set_ylabel("Fréchet distance")
axes[1].legend(loc="lower left")
axes[2].plot(FRACTIONS, [q.model.nn1_accuracy for q in memo_q], "o-", label="vs test split")
axes[2].plot(FRACTIONS, nn1_train, "s-", label="vs training images R")
axes[2].axhline(0.5, color="k", ls=":", lw=1.5)
axes[2].set_xlabel("fraction of samples copied")
axes[2].set_ylabel("1-NN accuracy")
axes[2].legend(loc="lower left")
fig_memo.tight_layout()
check_readable(fig_memo)
plt.show()

# %% [markdown]
# *Figure: left, the distance from each sample to its nearest training image, for 270 new digits
# and 270 copies; middle, the FD against the test split as the fraction of copies grows (flat, at
# the floor); right, the 1-NN accuracy against the test split (flat near 0.5) and against the
# training images (falling to 0). Look at the left panel: the two histograms do not overlap.* A
# copy sits within the dequantization jitter of its original; a new digit, however good, is a
# whole stroke away from every training digit. The lesson is the one of Theis et al. (2016): a
# sample-based metric measured against held-out data cannot tell memorisation from
# generalisation; the **training set** has to enter the test.

# %% tags=["checks"]
fd = np.array([q.model.frechet_distance for q in memo_q])
assert (fd < 1.5 * max(floor_draws["frechet_distance"])).all(), fd  # FD: copies look perfect
assert all(0.38 < q.model.nn1_accuracy < 0.62 for q in memo_q)  # and so does 1-NN against test
assert 0.35 < nn1_train[0] < 0.65 and nn1_train[-1] < 0.05, nn1_train  # 1-NN against train: ~0.5 -> ~0
assert (np.diff(nn1_train) < 0).all(), nn1_train
assert d_copy.max() < d_new.min(), (d_copy.max(), d_new.min())  # the histograms do not overlap
print("section 4 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Bits per dimension, done right
#
# **Intuition.** Likelihood models (VAEs, flows, diffusion through its ODE, autoregressive
# models) give a number the sample metrics cannot: how many bits the model needs, on average,
# to encode a held-out image. Digits are discrete (17 grey levels), but most models put a
# *density* on continuous $x$. Dequantization (Theis et al. 2016) bridges the two, and the
# rescaling the model sees ($[0, 1]$, $[-1, 1]$, ...) changes the density's value, which the
# answer must undo. Forgetting it is the most common bits/dim bug.
#
# **Algebra.** A discrete image $v \in \{0, \dots, L-1\}^D$ ($L = 17$, $D = 64$). The model sees
# $x = \text{low} + s\,(v + u)$ with $u \sim U[0,1)^D$ and $s = (\text{high} - \text{low}) / L$.
# Write $y = v + u \in [0, L)^D$. Change of variables: $p_Y(y) = p_X(x)\, s^D$. The bin of $v$ in
# $y$-space is the unit cube $v + [0,1)^D$, so the probability the model gives to $v$ is
# $$P(v) = \int_{[0,1)^D} p_Y(v + u)\,du \;\ge\; \exp \mathbb{E}_u \log p_Y(v + u) \quad\text{(Jensen)},$$
# with equality when $p_Y$ is constant on the bin. Hence
# $$\text{bits/dim} = -\frac{\mathbb{E}\log p_X(x) + D \log s}{D \ln 2} \;\ge\; -\frac{\mathbb{E}\log_2 P(v)}{D},$$
# an upper bound on the model's discrete cross-entropy, exact for a density flat on each bin.
# The term $D\log s$ is the change of variables; for $[0,1]$, $s = 1/17$ and it is worth
# $\log_2 17 \approx 4.09$ bits per dimension.
#
# **A model with a closed form.** Independent per-pixel categoricals $P_i(v_i)$, fitted on the
# train split (counts plus one). Its discrete bits/dim on the test split is
# $-\frac{1}{D}\sum_i \mathbb{E}\log_2 P_i(v_i)$, exactly. Its density on $[0,1)^D$ is flat on
# bins: $p_X(x) = \prod_i L\,P_i(\lfloor L x_i \rfloor)$ (the bin's probability over its width
# $1/L$); on $[-1, 1)^D$ each factor is $\frac{L}{2} P_i$.
#
# **Predict.** Feed the $[0,1]$ log-density to the naive formula $-\mathbb{E}\log p_X / (D\ln 2)$,
# without the change of variables. Larger or smaller than the true bits/dim, and by how much?

# %%
counts = F.one_hot(train.images.flatten(1).long(), LEVELS).sum(0).double()  # (64, 17) per-pixel histograms
P = (counts + 1) / (counts + 1).sum(1, keepdim=True)  # (64, 17), rows sum to 1
v_test = test.images.flatten(1).long()  # (270, 64)
log2_P = P.log2().gather(1, v_test.T).T  # (270, 64): log2 P_i(v_i)
closed_form = -log2_P.mean().item()

x_test = data.dequantize(test.images, LEVELS, torch.Generator().manual_seed(6)).flatten(1).double()  # in [0, 1)
bins_of_x = (x_test * LEVELS).floor().long()  # recovers v
log_p01 = (LEVELS * P.gather(1, bins_of_x.T).T).log().sum(1)  # (270,) log p_X on [0, 1)^64
log_pm11 = (LEVELS / 2 * P.gather(1, bins_of_x.T).T).log().sum(1)  # (270,) log p_X' on [-1, 1)^64, x' = 2x - 1
bits = {
    "closed form": closed_form,
    "[0, 1], with the Jacobian": metrics.bits_per_dim_discrete(log_p01, 64, LEVELS, (0.0, 1.0)),
    "[-1, 1], with the Jacobian": metrics.bits_per_dim_discrete(log_pm11, 64, LEVELS, (-1.0, 1.0)),
    "[0, 1], naive": -log_p01.mean().item() / (64 * math.log(2)),
    "[-1, 1], naive": -log_pm11.mean().item() / (64 * math.log(2)),
    "uniform model": math.log2(LEVELS),
}
for name, value in bits.items():
    print(f"{name:<28} {value:7.4f} bits/dim")

# %% [markdown]
# With the change of variables, both scalings give the closed form to every printed digit;
# without it, the $[0,1]$ number is off by exactly $\log_2 17 = 4.09$ bits and comes out
# **negative**, an impossible value for discrete data (a negative bits/dim is the tell-tale of a
# missing Jacobian), and the $[-1,1]$ number is off by $\log_2 8.5$. The uniform model, which
# knows nothing, needs $\log_2 17$ bits per pixel: every model must beat that.
#
# **Predict.** Now a density that is *not* flat on the bins: a per-pixel Gaussian truncated to
# $[0, 1]$, fitted to dequantized train digits, whose bin probabilities we can integrate exactly.
# Will the dequantized estimate be above, below or equal to its exact discrete bits/dim?

# %%
def log_mass(a, b):
    """log(Phi(b) - Phi(a)) for a < b, accurate in both tails (float64)."""
    flip = a > 0  # in the upper tail use Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp(log_lo - log_hi))


x_train = data.dequantize(train.images, LEVELS, torch.Generator().manual_seed(7)).flatten(1).double()
mean, std = x_train.mean(0), x_train.std(0).clamp(min=0.03)  # (64,) each
log_Z = log_mass(-mean / std, (1 - mean) / std)  # (64,) mass of N(mean, std^2) inside [0, 1]
edges = torch.arange(LEVELS + 1, dtype=torch.float64) / LEVELS
log_bin = log_mass((edges[:-1, None] - mean) / std, (edges[1:, None] - mean) / std) - log_Z  # (17, 64) exact log P_i(v)
exact_bits = -(log_bin.T.gather(1, v_test.T).T.sum(1)).mean().item() / (64 * math.log(2))
normal = torch.distributions.Normal(mean, std)
estimates = []
for seed in range(8):  # average over several dequantization draws u
    x = data.dequantize(test.images, LEVELS, torch.Generator().manual_seed(30 + seed)).flatten(1).double()
    estimates.append(metrics.bits_per_dim_discrete((normal.log_prob(x) - log_Z).sum(1), 64, LEVELS))
bits["truncated Gaussian, exact"] = exact_bits
bits["truncated Gaussian, dequantized"] = float(np.mean(estimates))
print(f"truncated Gaussian: exact {exact_bits:.4f} bits/dim, dequantized estimate {np.mean(estimates):.4f} "
      f"(sd over 8 draws of u: {np.std(estimates):.4f})")

# %%
fig_bits, axes = plt.subplots(1, 2, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 2.2]})
per_pixel = (-log2_P.mean(0)).reshape(8, 8)
axes[0].imshow(per_pixel, cmap="viridis")
for row in range(8):
    for col in range(8):  # the value of each pixel, written in its cell
        value = per_pixel[row, col].item()
        axes[0].text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=12,
                     color="k" if value > 0.6 * per_pixel.max().item() else "w")
axes[0].set_xlabel("pixel column")
axes[0].set_ylabel("pixel row")
axes[0].set_title("categorical model: bits of each pixel")
routes = list(bits)
colours = ["k", "C0", "C0", "C3", "C3", "0.6", "C2", "C2"]
axes[1].barh(range(len(routes)), [bits[r] for r in routes], color=colours)
axes[1].set_yticks(range(len(routes)), routes)
axes[1].axvline(0, color="k", lw=1)
axes[1].invert_yaxis()
axes[1].set_xlabel("bits per dimension on the test digits")
axes[1].set_ylabel("model and formula")
fig_bits.tight_layout()
check_readable(fig_bits)
plt.show()

# %% [markdown]
# *Figure: left, the categorical model's cost of each pixel on the test digits (the empty
# border costs almost nothing, the centre, where strokes vary, the most); right, bits/dim by
# each route. Look at the red bars (no change of variables), off by a constant that depends only
# on the scaling, and at the green pair: the dequantized estimate of the truncated Gaussian sits
# slightly above its exact value (about a hundredth of a bit here, printed above), the Jensen gap
# of a density that is not flat on its bins.*

# %% tags=["checks"]
assert abs(bits["[0, 1], with the Jacobian"] - closed_form) < 1e-9
assert abs(bits["[-1, 1], with the Jacobian"] - closed_form) < 1e-9
assert abs(bits["[0, 1], naive"] - (closed_form - math.log2(LEVELS))) < 1e-9 and bits["[0, 1], naive"] < 0
assert abs(bits["[-1, 1], naive"] - (closed_form - math.log2(LEVELS / 2))) < 1e-9
assert closed_form < math.log2(LEVELS)  # beats the uniform model
assert np.mean(estimates) > exact_bits + 3 * np.std(estimates), (np.mean(estimates), exact_bits)  # Jensen: an upper bound
assert abs(log_bin.exp().sum(0) - 1).max() < 1e-9  # the exact bin probabilities of each pixel sum to 1
print("section 5 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. "Compare the losses?"
#
# **Intuition.** Every family of lecture 00 prints a training loss, and it is tempting to put
# them in one table. They do not share a unit, or even a meaning:
# - a VAE's negative ELBO is in **nats per image** of a density, and a density's value depends
#   on the scale of the data (section 5: rescaling by $s$ shifts it by $D\log s$);
# - a GAN's loss is a **cross-entropy between two networks**: when the discriminator cannot
#   tell real from fake, its loss (summed over real and fake) is $\log 4$ (Goodfellow et al.
#   2014). A perfect generator gets there, and so does a weak generator facing an equally weak
#   discriminator: the number describes the balance of the game, not the samples;
# - flow matching and DDPM losses are **mean squared errors** of a velocity or a noise, in
#   squared data units, above a floor that depends on the data and the schedule, not on how well
#   the model samples.
#
# Two short demonstrations, with no training. First, units: one per-pixel Gaussian model, fitted
# by maximum likelihood to the same digits written three ways.
#
# **Predict.** Moving the data from $[0,1]$ to $[-1,1]$: by how many nats per image does the
# model's negative log-likelihood change? And its bits/dim?

# %%
x01 = data.dequantize(train.images, LEVELS, torch.Generator().manual_seed(8)).flatten(1).double()
x01_test = data.dequantize(test.images, LEVELS, torch.Generator().manual_seed(9)).flatten(1).double()
SCALINGS = {"[0, 1]": (0.0, 1.0), "[-1, 1]": (-1.0, 1.0), "grey levels [0, 17)": (0.0, 17.0)}
nll, bpd = {}, {}
for name, (low, high) in SCALINGS.items():
    z_train, z_test = low + (high - low) * x01, low + (high - low) * x01_test  # the data as this model sees it
    gauss = torch.distributions.Normal(z_train.mean(0), z_train.std(0))  # maximum likelihood, per pixel
    log_p = gauss.log_prob(z_test).sum(1)  # (270,)
    nll[name] = -log_p.mean().item()
    bpd[name] = metrics.bits_per_dim_discrete(log_p, 64, LEVELS, (low, high))
    print(f"{name:<20} NLL {nll[name]:8.2f} nats/image   bits/dim {bpd[name]:.4f}")

# %% [markdown]
# The same model, three "losses": they differ by $64\log 2 = 44.4$ and $64 \log 17 = 181.3$ nats,
# the log-Jacobians of the rescalings (on $[0,1]$ the "loss" is even negative: a density can
# exceed 1), while bits/dim of the discrete digits, which undoes the rescaling, is one number.
# (This Gaussian is a poor model, worse than the categorical of section 5; the point is the
# units, not the model.)
#
# Second, a loss that ranks two "models" the wrong way round. Model A predicts the **mean
# training image** every time; model B returns a **random training digit**. As a regression
# on the test digits (squared error, the kind of loss diffusion and flow matching minimise),
# A wins: the mean is the squared-error optimum. As samples, A is one blurry image repeated.
#
# **Predict.** Which model has the lower squared error? The lower FD?

# %%
mean_image = x01.mean(0)  # (64,)
random_digits = data.dequantize(train.images[torch.randint(len(train), (N,), generator=torch.Generator().manual_seed(10))],
                                LEVELS, torch.Generator().manual_seed(11))
mse = {"A: mean image": (x01_test - mean_image).pow(2).mean().item(),
       "B: random digit": (x01_test - random_digits.flatten(1).double()).pow(2).mean().item()}
as_samples = {"A: mean image": mean_image.float().reshape(1, 1, 8, 8).repeat(N, 1, 1, 1), "B: random digit": random_digits}
loss_q = {name: metrics.image_quality(images, seed=0) for name, images in as_samples.items()}
display(Markdown("| model | squared error to test digits | FD | recall | IS |\n|---|---|---|---|---|\n" +
                 "\n".join(f"| {name} | {mse[name]:.4f} | {q.model.frechet_distance:.1f} | {q.model.recall:.3f} | "
                           f"{q.model.inception_score:.2f} |" for name, q in loss_q.items())))

# %%
fig_loss, axes = plt.subplots(1, 4, figsize=(17, 4.4))
axes[0].bar(range(3), list(nll.values()), color="C3")
axes[0].set_ylabel("Gaussian NLL (nats per image)")
axes[1].bar(range(3), list(bpd.values()), color="C0")
axes[1].set_ylabel("bits per dimension")
for ax in axes[:2]:
    ax.set_xticks(range(3), ["[0,1]", "[-1,1]", "[0,17)"])
    ax.set_xlabel("data scaling")
axes[2].bar(range(2), list(mse.values()), color="C3")
axes[2].set_ylabel("squared error per pixel")
axes[3].bar(range(2), [q.model.frechet_distance for q in loss_q.values()], color="C0")
axes[3].axhline(quality.floor.frechet_distance, color="k", ls="--", lw=1.5, label="floor")
axes[3].set_ylabel("Fréchet distance (judge)")
axes[3].set_yscale("log")
axes[3].set_ylim(1, 1000)
axes[3].legend()
for ax in axes[2:]:
    ax.set_xticks(range(2), ["A: mean", "B: digit"])
    ax.set_xlabel("model")
fig_loss.tight_layout()
check_readable(fig_loss)
plt.show()

# %% [markdown]
# *Figure: left pair, one Gaussian model under three scalings of the data: its loss (red) moves
# with the units, its bits/dim (blue) does not. Right pair, two trivial "models": the squared
# error (red) prefers the mean image, the Fréchet distance against the test digits (blue, log
# scale, dashed: the floor) prefers real digits by two orders of magnitude.*
#
# **What is comparable** across families, then: numbers computed the same way from what every
# model can give, against the same reference and read next to the same floor.
#
# | quantity | which models | read against |
# |---|---|---|
# | FD, precision, recall, density, coverage, 1-NN, IS, classes covered (judge features) | every model that samples | the data-vs-data floor and its spread |
# | 1-NN accuracy and nearest-neighbour distances against the **training** set | every model that samples | the same for new data (memorisation) |
# | bits/dim of the discrete data (`bits_per_dim_discrete`) | likelihood models: exact (flows, autoregressive), bounds (VAE, diffusion ELBO) | the uniform model, $\log_2 L$; a bound is labelled as one |
# | network evaluations per sample, samples per second | every model | the same machine, in one run |
#
# A training loss is still the right number *within* one model: to watch its training curve,
# to compare two runs of one recipe, or two learning rates.

# %% tags=["checks"]
assert abs((nll["[-1, 1]"] - nll["[0, 1]"]) - 64 * math.log(2)) < 1e-6
assert abs((nll["grey levels [0, 17)"] - nll["[0, 1]"]) - 64 * math.log(17)) < 1e-6
assert max(bpd.values()) - min(bpd.values()) < 1e-9
assert mse["A: mean image"] < mse["B: random digit"]  # the loss prefers A ...
fd_a, fd_b = (loss_q[name].model.frechet_distance for name in ("A: mean image", "B: random digit"))
assert fd_b < 2 * quality.floor.frechet_distance and fd_a > 10 * fd_b  # ... the metric prefers B, by far
assert loss_q["A: mean image"].model.classes_covered <= 1 and loss_q["B: random digit"].model.classes_covered == 10
print("section 6 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The benchmark: every family on the digits, at matched compute
#
# **Intuition.** Section 1 gave us a yardstick that passed its exam; now we hold every model of
# the course against it. A fair race needs the same track and the same fuel: every model below
# sees the same 1,257 training digits (dequantized to $[0, 1)$ as in section 5; the three
# grey-level pixel models see the 17 levels themselves), and gets the **same number of gradient
# steps**, 2,000 of batch 128, with its own learning rate and EMA. Why steps and not seconds?
# A step count means the same thing on every machine and in every run, whereas wall clock on a
# shared 2-core machine drifts by a third from one run to the next; the train-seconds column then
# shows what a step of each family *costs*, which is the other half of the story. Two models buy
# extra compute, and their rows say so: consistency distillation trains its DDPM teacher first,
# rectified flow adds one reflow round.
#
# The table is `python -m unigm.bench images` (part of `make bench`, about 25 minutes on this
# machine): 31 models, 8 more trainings for the spread over seeds and 9 for the scaling study
# of section 11. This notebook reads its committed output, `results/bench_images.json`, which
# records the commit, the machine and the seeds; two of its rows are retrained live below and
# must come out the same.
#
# **Predict.** Which family do you expect at the top by Fréchet distance after 2,000 steps: the
# diffusion models, the flows, the GANs, or the autoregressive pixel models? And which one is
# cheapest to sample from?

# %%
bench = json.loads((ROOT / "results" / "bench_images.json").read_text())
meta, rows = bench["meta"], bench["rows"]
by_model = {row["model"]: row for row in rows}
floor_fd = rows[0]["quality"]["frechet_distance_floor"]
print(f"{len(rows)} models on the {meta['dataset']}, {meta['steps']} steps of batch {meta['batch_size']} each; "
      f"commit {meta['commit'][:12]}, {meta['processor']}, {meta['training_processes']} training processes, "
      f"{meta['wall_seconds'] / 60:.0f} min in all")
print("left out:", "; ".join(f"{name}: {why}" for name, why in meta["excluded"].items()))
display(Markdown(bench_images.markdown_table(bench)))

# %%
ranked = sorted(rows, key=lambda r: r["quality"]["frechet_distance"])
family_colour = {"diffusion": "C0", "flow": "C1", "GAN": "C3", "VAE": "C2", "autoregressive": "C4"}
fig_bench, (ax_fd, ax_cost) = plt.subplots(1, 2, figsize=(16, 9), gridspec_kw={"width_ratios": [1.3, 1]})
names = [r["model"] for r in ranked]
ax_fd.barh(names, [r["quality"]["frechet_distance"] for r in ranked],
           color=[family_colour[r["family"]] for r in ranked])
ax_fd.axvline(floor_fd, color="k", ls="--", label=f"data floor {floor_fd:.1f}")
ax_fd.set_xscale("log")
ax_fd.invert_yaxis()
ax_fd.set_xlabel("Fréchet distance to the test digits (log scale, lower is better)")
ax_fd.set_ylabel("model (best first)")
ax_fd.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c, label=f) for f, c in family_colour.items()]
             + [plt.Line2D([], [], color="k", ls="--", label=f"data floor {floor_fd:.1f}")], loc="lower right")
ax_fd.set_title("quality at matched compute (2,000 steps each)")
for r in rows:
    ax_cost.scatter(r["samples_per_second"], r["quality"]["frechet_distance"], color=family_colour[r["family"]], s=40)
    ax_cost.annotate(r["model"], (r["samples_per_second"], r["quality"]["frechet_distance"]), fontsize=12,
                     xytext=(3, 3), textcoords="offset points")
ax_cost.axhline(floor_fd, color="k", ls="--")
ax_cost.set(xscale="log", yscale="log", xlabel="samples per second (one CPU thread, log scale)",
            ylabel="Fréchet distance (log scale)", title="quality against sampling speed")
fig_bench.tight_layout()
check_readable(fig_bench)
plt.show()

# %% [markdown]
# *Figure: left, every model's Fréchet distance at 2,000 training steps, coloured by family, the
# data floor dashed; right, the same distance against how many samples per second the model
# draws on one thread. The best models sit bottom right: good and fast.*

# %% [markdown]
# **Live check.** Two rows of the table, retrained here with exactly the benchmark's code
# (`bench_images.train_model`, one thread as in the benchmark's workers): the VAE and the
# $\beta$-VAE, which section 10 needs anyway. On the machine that wrote the table the numbers
# agree to the last digit; elsewhere floating-point sums may differ in the last bits, which
# training amplifies a little, hence the tolerance.

# %%
live, live_rows = {}, {}
threads = torch.get_num_threads()
torch.set_num_threads(1)  # the benchmark trains each model on one thread
for name in ("vae", "beta_vae"):
    model, history, extra = bench_images.train_model(name, "digits", seed=0)
    live[name] = model
    live_rows[name] = bench_images.measure_model(model, history, name, "digits", seed=0, with_curves=False)
torch.set_num_threads(threads)
for name, row in live_rows.items():
    committed = by_model[name]
    print(f"{name:>9}: FD {row['quality']['frechet_distance']:.3f} (table {committed['quality']['frechet_distance']:.3f}), "
          f"{row['bits_per_dim']:.4f} bits/dim (table {committed['bits_per_dim']:.4f}), trained in {row['train_seconds']:.1f} s")

# %% tags=["checks"]
for name, row in live_rows.items():  # the committed table is what this code produces
    committed = by_model[name]
    assert abs(row["quality"]["frechet_distance"] / committed["quality"]["frechet_distance"] - 1) < 0.1, name
    assert abs(row["bits_per_dim"] / committed["bits_per_dim"] - 1) < 0.02, name
# the live VAE's quality gate: far from perfect, but every class and most of the data covered
assert live_rows["vae"]["quality"]["classes_covered"] == 10 and live_rows["vae"]["quality"]["coverage"] > 0.5
print("section 7 checks passed")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Samples of every model, in the benchmark's order
#
# Numbers first, pictures second, but never numbers alone: the grid below shows the first 16
# samples of each model, best FD first, next to 16 training digits.

# %%
def mosaic(images, columns=8):
    """Grey-level images (n, H, W) as one (rows * H, columns * W) array in [0, 1]."""
    images = np.asarray(images, dtype=float) / (LEVELS - 1)
    n, h, w = images.shape
    rows_ = math.ceil(n / columns)
    canvas = np.ones((rows_ * (h + 1), columns * (w + 1)))
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = image
    return canvas


panels = [("training data", train.images[:16, 0].numpy())] + [(r["model"], r["grid"]) for r in ranked]
fig_grid, axes = plt.subplots(math.ceil(len(panels) / 5), 5, figsize=(17, 2.1 * math.ceil(len(panels) / 5)))
for ax in axes.flat:
    ax.axis("off")
for ax, (title, images) in zip(axes.flat, panels):
    ax.imshow(mosaic(images), cmap="gray_r", vmin=0, vmax=1)
    fd = "" if title == "training data" else f" FD {by_model[title]['quality']['frechet_distance']:.0f}"
    ax.set_title(title + fd)
fig_grid.suptitle("16 samples of every model (from the benchmark run), best Fréchet distance first")
fig_grid.tight_layout()
check_readable(fig_grid)
plt.show()

# %% [markdown]
# *Figure: sixteen samples per model. Compare the top rows with the data, then look for the
# failure each weak model shows: blur (a VAE's mean decoder), noise (an unconverged sampler),
# collapse onto a few shapes (a GAN), scattered speckle (codes drawn independently).*
#
# ### How much of the ranking is noise? Three seeds of four models
#
# A table with one seed per model ranks noise as readily as models. For four representative
# models we trained three seeds each (different initial weights and batches, same everything
# else); the spread of their FD tells us which gaps in the table are real.

# %%
spread_rows = []
for name in meta["spread_models"]:
    fds = [s["frechet_distance"] for s in bench["seeds"] if s["model"] == name]
    bits = [s["bits_per_dim"] for s in bench["seeds"] if s["model"] == name and s["bits_per_dim"] is not None]
    spread_rows.append(dict(model=name, seeds=len(fds), FD_mean=float(np.mean(fds)), FD_sd=float(np.std(fds, ddof=1)),
                            FD_min=min(fds), FD_max=max(fds),
                            bits_mean=float(np.mean(bits)) if bits else float("nan"),
                            bits_sd=float(np.std(bits, ddof=1)) if bits else float("nan")))
display(Markdown(markdown_table(spread_rows, ["model", "seeds", "FD_mean", "FD_sd", "FD_min", "FD_max", "bits_mean", "bits_sd"])))
relative_sd = max(r["FD_sd"] / r["FD_mean"] for r in spread_rows)
print(f"largest seed-to-seed spread: {100 * relative_sd:.0f}% of the mean FD; gaps smaller than about "
      f"{200 * relative_sd:.0f}% between two rows of the table are within noise")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Steps against quality: what a network evaluation buys
#
# **Intuition.** Training is paid once; sampling is paid for every image. The diffusion-flow
# family can trade the two: the same network sampled with fewer, larger steps is cheaper and
# (usually) worse. How fast the quality falls as steps are cut depends on **the path** (how
# curved the trajectories are) and on **the solver** (what order of accuracy one step has).
# Lecture 03 measured solver orders on a Gaussian; here is the same question on digits, with
# the benchmark's trained models: DDPM sampled by its ancestral (stochastic) sampler and by DDIM
# (the deterministic PF-ODE), flow matching by Euler and by Heun (two evaluations per step),
# rectified flow after one reflow round, and the two consistency models, made for one step.
#
# **Predict.** At 4 network evaluations, rank: DDPM ancestral, DDIM, flow matching with Euler,
# rectified flow with Euler, consistency distillation.

# %%
fig_steps, ax = plt.subplots(figsize=(11, 6.5))
curve_rows = []
for name in ("ddpm", "flow_matching", "rectified_flow", "consistency_distillation", "consistency_training"):
    for sampler, points in by_model[name]["curves"].items():
        nfe = [p["nfe"] for p in points]
        fd = [p["frechet_distance"] for p in points]
        ax.plot(nfe, fd, "o-", label=sampler)
        curve_rows += [dict(sampler=sampler, steps=p["steps"], NFE=p["nfe"], FD=p["frechet_distance"],
                            coverage=p["coverage"]) for p in points]
ax.axhline(floor_fd, color="k", ls="--", label="data floor")
ax.set(xscale="log", yscale="log", xlabel="network evaluations per sample (log scale)",
       ylabel="Fréchet distance (log scale)", title="quality against sampling cost, the same trained networks")
ax.legend(fontsize=12, ncols=2)
fig_steps.tight_layout()
check_readable(fig_steps)
plt.show()
curves_by = {(r["sampler"], r["NFE"]): r["FD"] for r in curve_rows}

# %% [markdown]
# *Figure: Fréchet distance against the network evaluations spent per sample, for each sampler
# of the benchmark's models (the same weights at every point of a curve). Read a vertical line
# at 4 or 8 evaluations to compare samplers at equal cost.*

# %% tags=["checks"]
at = lambda sampler, nfe: curves_by[(sampler, nfe)]
# one Euler step of the reflowed flow beats one Euler step of plain flow matching (straighter paths)
assert at("rectified flow (1 reflow), Euler", 1) < at("flow matching, Euler", 1)
# at 8 evaluations, Heun (4 steps of 2 evaluations) beats Euler (8 steps) on the same flow
assert at("flow matching, Heun", 8) < at("flow matching, Euler", 8)
# this DDPM's deterministic sampler is worse than its stochastic one at every budget measured
assert all(at("DDIM (eta = 0)", k) > at("DDPM ancestral", k) for k in (8, 16, 64, 1000))
# consistency training improves from 1 to 2 steps; the distilled student is no better than its teacher allows
assert at("consistency training", 2) < at("consistency training", 1)
assert at("consistency distillation", 1) > at("consistency training", 1)
print("section 8 checks passed")

# %% [markdown]
# **What the curves say.** The flows are the cheap samplers here: flow matching reaches most of
# its quality by 8 evaluations, Heun's second-order step beats Euler at equal cost, and one
# reflow round makes even a single Euler step usable (the straighter paths of lecture 01,
# section 5.4, measured on images). The DDPM is the surprise, and an honest one: this small MLP
# predicting the noise in 64 dimensions learns a poor score at 2,000 steps (its FD sits far above
# the $x_0$- and $v$-parametrised versions in the table of section 7), and the deterministic DDIM
# sampler, which follows the probability-flow ODE of that score faithfully, is *worse* than the
# ancestral sampler at every budget: fresh noise at each step lets the stochastic sampler correct
# part of the errors earlier steps made (Karras et al. 2022 make the same observation). The
# consistency models show the cost of a teacher: distillation copies this DDPM's errors into one
# step, while consistency training, which needs no teacher, does better and improves with a
# second step. The lesson is the protocol's, not a family's: the ranking of samplers depends on
# how good the network is, so measure it with the network you have.
#
# ## 9. Bits per dimension of every likelihood model
#
# Section 5 derived how to read a density on dequantized data as bits per dimension of the
# discrete digits. Every model below is on the same footing: the 270 test digits, 17 levels,
# 64 pixels, and the number is an **upper bound** on the model's discrete cross-entropy in
# every case but the grey-level pixel models, whose number is exact. The kinds differ and the
# table says which: the VAE's ELBO and its importance-weighted bound (IWAE, $k = 64$, tighter),
# RealNVP's exact change of variables, flow matching and the diffusion models through the
# probability-flow ODE (exact up to the solver's error), PixelCNN and the pixel transformer with
# a softmax over the 17 levels. The baseline every model must beat: **independent pixels**,
# each pixel a categorical over the 17 levels fitted on the train split.
#
# **Predict.** Which will win here, the autoregressive models or the flows? And will the models
# with the best samples (section 7) also have the best bits/dim?

# %%
independent = bench["independent_pixels_bits_per_dim"]
bits_rows = [dict(model=r["model"], family=r["family"], bits_per_dim=r["bits_per_dim"], kind=r["bits_kind"],
                  FD=r["quality"]["frechet_distance"]) for r in rows if r["bits_per_dim"] is not None]
bits_rows += [dict(model="vae (ELBO)", family="VAE", bits_per_dim=by_model["vae"]["elbo_bits_per_dim"],
                   kind="ELBO, one z", FD=by_model["vae"]["quality"]["frechet_distance"]),
              dict(model="independent pixels", family="baseline", bits_per_dim=independent,
                   kind="exact (categorical pixels)", FD=float("nan"))]
bits_rows.sort(key=lambda r: r["bits_per_dim"])
display(Markdown(markdown_table(bits_rows, ["model", "family", "bits_per_dim", "kind", "FD"])))
fig_bits, (ax_b, ax_s) = plt.subplots(1, 2, figsize=(16, 6.5))
ax_b.barh([r["model"] for r in bits_rows], [r["bits_per_dim"] for r in bits_rows],
          color=[family_colour.get(r["family"], "0.5") for r in bits_rows])
ax_b.axvline(independent, color="k", ls="--", label=f"independent pixels {independent:.2f}")
ax_b.invert_yaxis()
ax_b.set(xlabel="test bits per dimension (lower is better)", ylabel="model (best first)", title="likelihood")
ax_b.legend()
for r in bits_rows:
    if r["family"] != "baseline":
        ax_s.scatter(r["bits_per_dim"], r["FD"], color=family_colour[r["family"]], s=40)
        ax_s.annotate(r["model"], (r["bits_per_dim"], r["FD"]), fontsize=12, xytext=(3, 3), textcoords="offset points")
ax_s.set(yscale="log", xlabel="test bits per dimension", ylabel="Fréchet distance (log scale)",
         title="likelihood and sample quality are different axes")
fig_bits.tight_layout()
check_readable(fig_bits)
plt.show()

# %% [markdown]
# *Figure: left, test bits/dim of every likelihood model, the independent-pixel baseline dashed;
# right, bits/dim against Fréchet distance for the same models: if likelihood and sample quality
# told the same story, the points would lie on a rising line.*

# %%
seen = torch.zeros(64, LEVELS, dtype=torch.bool)
seen[torch.arange(64).repeat(len(train)), train.images.flatten().long()] = True  # (pixel, level) pairs of training
unseen = ~seen[torch.arange(64), test.images.flatten(1).long()]  # (270, 64)
print(f"{unseen.any(1).sum().item()} of {len(test)} test digits have a grey level at some pixel where no training digit "
      f"has it ({unseen.sum().item()} pixels in all)")

# %% [markdown]
# **What the bits say.** Only the three grey-level autoregressive models beat independent pixels;
# every continuous density on the dequantized digits is *worse* than that baseline at this
# budget. Two reasons, both from section 5: their numbers are upper bounds (the dequantization
# gap: a smooth density wastes mass between the 17 levels, which a categorical does not), and
# 2,000 steps on 1,257 images is little for a 64-dimensional density. RealNVP's number is not a
# typo: its density became very narrow in directions where the training digits never vary (the
# border pixels), and the few test digits with a grey level where no training digit has one
# (counted above) each cost it thousands of nats; its samples are nevertheless among the better
# ones. The right panel makes the general point of Theis et al. (2016): the likelihood ranking and
# the sample ranking disagree. The VAE has the best continuous bits/dim with blurry samples; the
# best samples of all come from the pixel transformer, which is also the likelihood winner, and
# from WGANs, which have no likelihood at all.

# %% tags=["checks"]
assert by_model["vae"]["bits_per_dim"] <= by_model["vae"]["elbo_bits_per_dim"] + 1e-9  # IWAE is the tighter bound
beats_independent = {r["model"] for r in rows if r["bits_per_dim"] is not None and r["bits_per_dim"] < independent}
assert beats_independent == {"pixelcnn", "gated_pixelcnn", "pixel_transformer"}, beats_independent
assert 0 < unseen.any(1).sum().item() <= 10  # a handful of test digits outside the training support
print("section 9 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. Latent spaces of the VAE family
#
# **Intuition.** A VAE family model is also a map from images to a short code. What does that
# code look like? For the Gaussian VAE and the $\beta$-VAE (trained live in section 7) the code
# is the encoder's mean; for the VQ-VAE and FSQ autoencoders (the course checkpoints of lecture
# 01, section 4.4) it is the quantized latent. We project the codes of the 270 test digits onto
# their first two principal components and colour them by class, and we measure how much class
# information the code keeps with a 5-nearest-neighbour classifier fitted on the train codes.
# Then we walk in a straight line between the codes of two test digits and decode every point.
#
# **Predict.** $\beta = 4$ pushes the posterior towards the prior: will its classes be more or
# less separated than the plain VAE's? And what will a straight line between two quantized codes
# decode to?

# %%
vqvae, _ = checkpoints.load("vqvae_restarts", progress=False)
fsq_vae, _ = checkpoints.load("fsq_vae", progress=False)
x_train = checkpoints.digits_dequantized("train")
x_test = checkpoints.digits_dequantized("test")


def gaussian_code(model):
    return lambda x: model.encode(model.preprocess(x))[0]


def quantized_code(model):
    return lambda x: model.quantize(model.encode(x))[0].flatten(1)


encoders = {"VAE (latent mean)": gaussian_code(live["vae"]), "beta-VAE, beta = 4 (latent mean)": gaussian_code(live["beta_vae"]),
            "VQ-VAE (quantized codes)": quantized_code(vqvae), "FSQ (quantized codes)": quantized_code(fsq_vae)}
latent_rows, fig_latent = [], plt.figure(figsize=(17, 4.6))
for i, (title, encode) in enumerate(encoders.items()):
    with torch.no_grad():
        z_train, z_test = encode(x_train).numpy(), encode(x_test).numpy()
    knn = KNeighborsClassifier(5).fit(z_train, train.labels.numpy())
    accuracy = knn.score(z_test, test.labels.numpy())
    pca = PCA(2).fit(z_train)
    projected = pca.transform(z_test)
    ax = fig_latent.add_subplot(1, 4, i + 1)
    points = ax.scatter(projected[:, 0], projected[:, 1], c=test.labels.numpy(), cmap="tab10", s=12)
    ax.set(xlabel="principal component 1", ylabel="principal component 2",
           title=f"{title}\n{z_test.shape[1]} numbers, 5-NN accuracy {accuracy:.2f}")
    latent_rows.append(dict(model=title, code_size=z_test.shape[1], knn_accuracy=accuracy,
                            variance_in_2_pcs=float(pca.explained_variance_ratio_.sum())))
colorbar = fig_latent.colorbar(points, ax=fig_latent.axes, label="digit class", ticks=range(10))
colorbar.ax.set_xlabel("class")
check_readable(fig_latent)
plt.show()
display(Markdown(markdown_table(latent_rows, ["model", "code_size", "knn_accuracy", "variance_in_2_pcs"])))

# %% [markdown]
# *Figure: the codes of the 270 test digits, projected on their first two principal components
# (fitted on the train codes) and coloured by class; the title gives the code size and how
# often a 5-NN classifier on the full code recovers the class.*
#
# The two Gaussian VAEs of the zoo keep a 2-number code (their 2D recipe's latent size, used
# unchanged on the digits), so the PCA is only a rotation and a 5-NN classifier recovers about
# seven digits in ten; the $\beta$-VAE's stronger pull to the prior did not cost class
# information here. The quantized autoencoders keep 12 and 16 numbers and almost all of the class
# (their codes were trained to reconstruct, not to sample: section 7 shows what independent codes
# decode to). Class structure is visible in every panel.

# %%
a, b = x_test[test.labels == 0][0:1], x_test[test.labels == 6][0:1]
weights = torch.linspace(0, 1, 8)


def decode_line(title):
    with torch.no_grad():
        if title.startswith(("VAE", "beta")):
            model = live["vae" if title.startswith("VAE") else "beta_vae"]
            za, zb = (model.encode(model.preprocess(x))[0] for x in (a, b))
            z = torch.cat([(1 - w) * za + w * zb for w in weights])
            return model.decode(z)[0].reshape(-1, 8, 8)
        model = vqvae if title.startswith("VQ") else fsq_vae
        za, zb = model.encode(a), model.encode(b)
        z = torch.cat([(1 - w) * za + w * zb for w in weights])  # a line between the encoder outputs ...
        return model.decode(model.quantize(z)[0]).reshape(-1, 8, 8)  # ... snapped to the code grid


fig_interp, axes = plt.subplots(4, 8, figsize=(14, 7.5))
for row_index, (row_axes, title) in enumerate(zip(axes, encoders)):
    for ax, image, w in zip(row_axes, decode_line(title), weights):
        ax.imshow(image.clamp(0, 1), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
        if row_index == 0:
            ax.set_title(f"w = {w:.2f}")
    row_axes[0].text(-0.15, 0.5, title.split(" (")[0].replace(", ", "\n"), transform=row_axes[0].transAxes,
                     ha="right", va="center", fontsize=12)
fig_interp.suptitle("decoding a straight line between the codes of a test 0 and a test 6")
fig_interp.tight_layout()
check_readable(fig_interp)
plt.show()

# %% [markdown]
# *Figure: each row decodes eight points on the straight line from the code of a test 0 (left)
# to that of a test 6 (right). The Gaussian VAEs decode a gradual morph; the quantized
# autoencoders snap each point to the nearest code, so the decoded images change in jumps.*

# %% tags=["checks"]
knn = {r["model"].split(" (")[0]: r["knn_accuracy"] for r in latent_rows}
assert all(accuracy > 0.5 for accuracy in knn.values()), knn  # every code keeps most of the class (chance: 0.1)
assert knn["beta-VAE, beta = 4"] > knn["VAE"] - 0.05  # the stronger prior pull cost no class information here
assert min(knn["VQ-VAE"], knn["FSQ"]) > 0.9 > max(knn["VAE"], knn["beta-VAE, beta = 4"])  # longer codes keep more
print("section 10 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. A small scaling study: flow matching against steps and width
#
# **Intuition.** How does quality improve with compute? Scaling studies (Kaplan et al. 2020 for
# language models; Peebles & Xie 2023 for diffusion transformers) fit the loss, or a quality
# metric, as a power law in the compute spent: a straight line on log-log axes, whose slope says
# how much a doubling buys. We do the smallest honest version for one family, flow matching on
# the digits: its **excess** Fréchet distance (FD minus the data floor, the part a better model
# could remove) against training steps at the default width 128, and against the number of
# parameters at 2,000 steps (widths 32 to 512).
#
# **Predict.** Doubling the steps or doubling the width: which buys more here?

# %%
scaling = bench["scaling"]
points = scaling["points"]
fig_scale, (ax_steps, ax_width) = plt.subplots(1, 2, figsize=(15, 5.5))
for ax, key, fixed, slope, label in ((ax_steps, "steps", ("hidden", 128), scaling["steps_slope"], "training steps"),
                                     (ax_width, "parameters", ("steps", meta["steps"]), scaling["width_slope"], "parameters")):
    chosen = sorted((p for p in points if p[fixed[0]] == fixed[1]), key=lambda p: p[key])
    x = np.array([p[key] for p in chosen], float)
    excess = np.array([p["frechet_distance"] - p["frechet_distance_floor"] for p in chosen])
    ax.plot(x, excess, "o", ms=8, label="measured")
    fit = excess > 0
    intercept = np.mean(np.log(excess[fit]) - slope * np.log(x[fit]))
    ax.plot(x, np.exp(intercept) * x**slope, "--", label=f"fitted power law, slope {slope:.2f}")
    ax.set(xscale="log", yscale="log", xlabel=f"{label} (log scale)", ylabel="FD minus data floor (log scale)",
           title=f"flow matching, {fixed[0]} = {fixed[1]}")
    ax.legend()
fig_scale.tight_layout()
check_readable(fig_scale)
plt.show()
display(Markdown(markdown_table([dict(steps=p["steps"], hidden=p["hidden"], parameters=p["parameters"],
                                      FD=p["frechet_distance"], train_seconds=p["train_seconds"]) for p in points],
                                ["steps", "hidden", "parameters", "FD", "train_seconds"])))
print(f"excess FD ~ steps^{scaling['steps_slope']:.2f} at width 128; ~ parameters^{scaling['width_slope']:.2f} at {meta['steps']} steps")

# %% [markdown]
# *Figure: the excess Fréchet distance of flow matching on log-log axes, against training steps
# (left) and against parameters (right), with the fitted power law.*
#
# Both slopes are negative, but the points are not a clean line: the excess falls steeply up to
# about 1,000 steps and then rises a little (with 1,257 training images, longer training starts to
# fit the training set rather than the distribution), and widths above 128 buy little at 2,000
# steps. A scaling law is a claim about a regime; on this data set the regime ends early, and
# a fit through five points of one seed says so only if you look at the residuals.

# %% tags=["checks"]
assert scaling["steps_slope"] < 0 and scaling["width_slope"] < 0  # more training and more width help, overall
fd_at = {(p["steps"], p["hidden"]): p["frechet_distance"] for p in points}
assert fd_at[1000, 128] < fd_at[250, 128] / 3 and fd_at[4000, 128] > fd_at[1000, 128]  # steep, then saturating
assert fd_at[2000, 64] > 1.4 * fd_at[2000, 128]  # 64 -> 128 pays ...
assert max(fd_at[2000, w] for w in (128, 256, 512)) < 1.3 * min(fd_at[2000, w] for w in (128, 256, 512))  # ... beyond, little
print("section 11 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 12. What the benchmark says about the families
#
# The table, the curves and the plots answer the course's question family by family. First the
# best of each family, with what it costs:
# %%
family_rows = []
for family_name in family_colour:
    members = [r for r in rows if r["family"] == family_name]
    best_row = min(members, key=lambda r: r["quality"]["frechet_distance"])
    bits = [r["bits_per_dim"] for r in members if r["bits_per_dim"] is not None]
    family_rows.append(dict(family=family_name, models=len(members), best=best_row["model"],
                            FD=best_row["quality"]["frechet_distance"], coverage=best_row["quality"]["coverage"],
                            best_bits=min(bits) if bits else float("nan"), NFE=best_row["nfe"],
                            samples_per_s=best_row["samples_per_second"], train_s=best_row["train_seconds"]))
display(Markdown(markdown_table(family_rows, ["family", "models", "best", "FD", "coverage", "best_bits", "NFE",
                                              "samples_per_s", "train_s"])))
fd = lambda name: by_model[name]["quality"]["frechet_distance"]

# %% [markdown]
# - **Which distance.** Among the GANs, the two Wasserstein critics with a smooth constraint
#   (gradient penalty, spectral normalisation) reach the best FD of the family, well ahead of the
#   Jensen-Shannon GANs (`gan`, `minimax_gan`, the f-GAN): lecture 02's point that an IPM gives
#   useful gradients where a saturated JS does not, seen on images. They pay for it: five critic
#   updates per step and a gradient penalty make a WGAN-GP step about ten times dearer.
# - **Which path.** Flow matching with independent or OT couplings and rectified flow sit close
#   together after 64 evaluations; the coupling matters at few steps (section 8), not at many. The
#   noise-predicting MLP DDPM is the weak diffusion model; the same network predicting $x_0$ with
#   EDM's preconditioning, or $v$, is three times better in FD: the parametrisation of lecture 01,
#   section 7.2, matters more than the family.
# - **Which likelihood.** Exact discrete likelihoods (autoregressive) win bits/dim outright and,
#   here, samples too; but they sample one pixel at a time, hundreds to thousands of times slower
#   than a one-step generator.
# - **What it costs.** One-step generators (GANs, VAEs, consistency models) draw tens of thousands
#   of samples per second on one thread; diffusion spends 200-1,000 evaluations; the
#   autoregressive models 64 sequential ones through a larger network.
# - **Where the course's models are weak.** The MLP noise-predicting DDPM, and consistency
#   distillation that inherits its errors; latent diffusion at this budget, because its recipe
#   spends its first 2,000 steps on the autoencoder, so at matched 2,000 steps its DDPM has not
#   trained at all (lecture 01's checkpoint, 6,000 steps, reaches FD 5.6); the toy StyleGAN; MAR
#   under-trained; the Hutchinson CNF, slow to train. The scaling study shows flow matching
#   saturating by 1,000 steps on 1,257 images: more steps overfit rather than help, which is why
#   its fitted slope is a summary, not a law. And one seed per row: section 7's spread says
#   differences under about a third of the FD are not resolved.

# %% tags=["checks"]
assert ranked[0]["family"] == "autoregressive" and ranked[0]["quality"]["frechet_distance"] < 2 * floor_fd
assert max(fd("wgan_gp"), fd("wgan_sn")) < min(fd("gan"), fd("minimax_gan"), fd("f_gan"))
assert max(fd("ddpm_x0"), fd("ddpm_v")) < fd("ddpm") / 2
assert by_model["wgan_gp"]["train_seconds"] > 5 * by_model["gan"]["train_seconds"]
assert fd("latent_diffusion") > 3 * fd("pixel_ddpm")  # the budget spent on the autoencoder, see above
print("section 12 checks passed")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Check your understanding
#
# 1. A model's FD against the test digits is 6.5 and the floor is 5.8. Is the model worse than
#    the data? What else do you need to know?
# 2. Under noise, recall stayed near 1 while coverage fell. Explain with a picture of $k$-NN
#    balls why, and say which of the two you would report for diversity.
# 3. A GAN's samples reach precision 0.98 and recall 0.35. What failure do you suspect, and
#    which single figure of this notebook would confirm it?
# 4. A model's samples match the floor on every metric against the test split. Name two ways it
#    could still be a bad model, and the measurement that would catch each.
# 5. A flow trained on $[-1, 1]$ reports $-0.9$ bits/dim on the digits. What went wrong?
# 6. The table ranks model A above model B by 0.8 in FD, and the spread over seeds of section 7
#    is 10% of the FD. Would you publish "A beats B"? What would you run first?
# 7. At 4 network evaluations, which sampler of section 8 would you ship, and what does the
#    answer cost at training time?
# 8. A model has the best bits/dim of section 9 and a middling FD. Name a model of this course
#    for which that happens, and explain why a likelihood and a sample metric can disagree.
# 9. The scaling slope of section 11 is fitted on five points of one seed. What would make you
#    trust it for 16,000 steps?
#
# ## Summary
#
# - **A metric is trusted only after an exam.** Show it data with a known defect of known size:
#   fresh data (the floor), noisy and blurred data, data with classes removed, copies of the
#   training set. Here every metric passed for the defects it is meant to see, and we found the
#   ones it misses: $k$-NN recall is inflated by spread-out samples, and nothing measured
#   against held-out data sees copying.
# - **Every number sits next to its floor.** Two sets of real digits are not at distance zero;
#   the floor and its spread over draws are the ideal value and the resolution at this sample
#   size. The floor also depends on the judge: trained on the train split, it places train
#   images slightly closer to the test digits than new digits are, which is why 1-NN can sit
#   below 0.5.
# - **Fidelity and diversity are different axes.** Precision and density measure the first,
#   recall and coverage the second; mode dropping moves only the second. IS and the class
#   histogram count classes through the judge.
# - **Memorisation is a relation to the training set.** 1-NN accuracy against the training
#   images, or the distance to the nearest training image, catches it; FD cannot.
# - **Bits/dim needs the change of variables.** From a density on dequantized data rescaled to
#   any interval, bits/dim of the discrete data is $-(\mathbb{E}\log p_X + D\log s)/(D\ln 2)$, an
#   upper bound on the discrete cross-entropy, exact for densities flat on bins.
# - **Losses are not a leaderboard.** They have different units and meanings across families;
#   compare samples with the metrics above, likelihoods in bits/dim, costs in network evaluations.
# - **A benchmark is matched compute plus floors plus spread.** Every model of the zoo trained for
#   the same 2,000 steps on the digits: the autoregressive pixel transformer is best on samples
#   and bits, Wasserstein GANs beat Jensen-Shannon GANs at ten times the cost per step, the
#   parametrisation of a diffusion model matters more than its family, and one-step generators
#   sample thousands of times faster than pixel-by-pixel ones. Seeds move FD by up to a third.
# - **Samplers are compared at equal network evaluations.** Straight paths (reflow) and
#   higher-order steps (Heun) win at few evaluations; a poorly trained score makes the
#   deterministic sampler the worse one.
# - **Likelihood and sample quality are different axes.** Only exact discrete models beat
#   independent pixels in bits/dim here; a flow with excellent samples can have a terrible test
#   likelihood when a few test images leave the training support.
# - **Latent spaces and scaling are measured, not drawn.** Class information in a code is a
#   nearest-neighbour accuracy; a scaling law is a fitted slope on log-log axes, which on 1,257
#   images saturates after about 1,000 steps.
#
# ## References
#
# - Goodfellow et al. (2014). Generative Adversarial Networks. arXiv:1406.2661.
# - Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter (2017). GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium. arXiv:1706.08500.
# - Kaplan et al. (2020). Scaling Laws for Neural Language Models. arXiv:2001.08361.
# - Karras, Aittala, Aila & Laine (2022). Elucidating the Design Space of Diffusion-Based Generative Models. arXiv:2206.00364.
# - Kynkäänniemi, Karras, Laine, Lehtinen & Aila (2019). Improved Precision and Recall Metric for Assessing Generative Models. arXiv:1904.06991.
# - Liu, Gong & Liu (2023). Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow. arXiv:2209.03003.
# - Lopez-Paz & Oquab (2017). Revisiting Classifier Two-Sample Tests. arXiv:1610.06545.
# - Naeem, Oh, Uh, Choi & Yoo (2020). Reliable Fidelity and Diversity Metrics for Generative Models. arXiv:2002.09797.
# - Peebles & Xie (2023). Scalable Diffusion Models with Transformers. arXiv:2212.09748.
# - Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen (2016). Improved Techniques for Training GANs. arXiv:1606.03498.
# - Theis, van den Oord & Bethge (2016). A Note on the Evaluation of Generative Models. arXiv:1511.01844.
#
# ## Exercise
#
# The graded exercise for this lecture is
# [exercises/04_experiments.ipynb](../exercises/04_experiments.ipynb) (open it with `make lab`;
# grading: see the README): you write the core of four metrics yourself and check each against
# `unigm.metrics` and against closed forms: the Fréchet distance between Gaussians and between
# feature sets, with its closed form for diagonal covariances; precision and recall from k-NN
# balls; bits/dim of discrete data from a density of dequantized, rescaled data; the 1-NN
# two-sample accuracy and its expected value when both sets come from one distribution; and four
# likelihoods reported in different units, ranked on one scale.
