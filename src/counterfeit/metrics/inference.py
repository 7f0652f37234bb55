"""What an encoder E (x -> z) or a semi-supervised D has learned, scored on the run's test split (`--metrics
recon,probe,ssl`):

recon  x -> E -> G -> x': the mean absolute pixel difference in [0, 1], and whether the bundled classifier puts x'
       in the class it puts x in (BiGAN / ALI reconstructions keep the digit, not its pixels), beside its accuracy
       on x' against the true labels.
probe  a linear classifier (multinomial logistic regression, L-BFGS on standardised features) trained on E(x) of
       the training split's labels and scored on the test split: how linearly the code separates the classes (a
       semi-supervised GAN: its D's last hidden layer).
ssl    the test error of a semi-supervised D's classifier (its moving average where kept; no noise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import load_data, to_float, to_uint8
from ..errors import UserError
from .spec import metric

BATCH = 500


def own_test_split(s, names: str) -> None:
    """These metrics score the run's own labelled test split: refused (before anything runs) where there is none
    (a folder of images or an .npz hands back its one set of images for any split: never scored as a test set)."""
    if s.data_override:
        raise UserError(f"--data does not apply to {names}: they score the run's own test split")
    d = s.cfg.data
    if load_data(d.name, "test", d.image_size, d.channels).y is None:
        raise UserError(f"{names} score the labelled test split of the run's dataset; '{d.name}' has none (MNIST, "
                        "Fashion-MNIST, CIFAR-10 and IDX / CIFAR folders with test files have one)")


def has_encoder(s) -> None:
    if s.recipe is None or not hasattr(s.recipe, "encode"):
        what = "a samples file" if s.recipe is None else f"a '{s.recipe.cfg.model.recipe}' run"
        raise UserError(f"metrics recon and probe need a run with an encoder (an encoder run, BiGAN / ALI, a VAE), "
                        f"not {what}")
    own_test_split(s, "recon and probe")


def has_code(s) -> None:
    if s.recipe is not None and hasattr(s.recipe, "features"):
        return own_test_split(s, "probe")
    has_encoder(s)


def has_classifier(s) -> None:
    if s.recipe is None or not hasattr(s.recipe, "classify"):
        what = "a samples file" if s.recipe is None else f"a '{s.recipe.cfg.model.recipe}' run"
        raise UserError(f"metric ssl needs a semi-supervised GAN run (recipe ssgan), not {what}")
    own_test_split(s, "ssl")


@torch.no_grad()
def encoded(recipe, images: torch.Tensor, fn=None) -> torch.Tensor:
    """uint8 images -> E(x) (or fn(x)), float (N, dim), in batches."""
    fn, rng = fn or recipe.encode, recipe.cfg.data.range
    return torch.cat([fn(to_float(images[i : i + BATCH], rng)).float() for i in range(0, len(images), BATCH)])


@torch.no_grad()
def reconstructed(recipe, images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> G(E(x)) as uint8."""
    rng = recipe.cfg.data.range
    return torch.cat([to_uint8(recipe.generate(recipe.encode(to_float(images[i : i + BATCH], rng))).float(), rng)
                      for i in range(0, len(images), BATCH)])


def test_split(s):
    d = s.cfg.data
    data = load_data(d.name, "test", d.image_size, d.channels)
    n = min(s.n, len(data)) if s.n else len(data)
    return data.x[:n], None if data.y is None else data.y[:n]


@metric("recon", "model", None, lambda r: [
    f"recon:     L1 {r['l1']:.4f} over {r['n']} test images"
    + (f"; classifier agrees on {r['agreement']:.3f} (x' in x's class), {r['accuracy']:.3f} against the labels"
       if r.get("agreement") is not None and r.get("accuracy") is not None else "")], check=has_encoder,
        flat={"recon_l1": "l1", "recon_agreement": "agreement"})
def recon(s) -> dict:
    from .features import load_extractor, manifest
    from .scores import reference_name

    x, y = test_split(s)
    rec = reconstructed(s.recipe, x)
    out = {"l1": float((x.float() - rec.float()).abs().mean() / 255.0), "n": len(x)}
    ref = reference_name(s.cfg.data.name)
    if ref in manifest():  # a bundled classifier of this data: does x' keep x's class?
        ex = load_extractor(ref)
        a, b = ex(x)[1].argmax(1), ex(rec)[1].argmax(1)
        out.update(agreement=float((a == b).float().mean()), classifier=ex.provenance(),
                   accuracy=None if y is None else float((b == y).float().mean()),
                   accuracy_real=None if y is None else float((a == y).float().mean()))
    return out


def linear_probe(train_f, train_y, test_f, test_y, steps: int = 200, weight_decay: float = 1e-4) -> float:
    """Test accuracy of multinomial logistic regression fit on (train_f, train_y) with L-BFGS."""
    mu, sd = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    a, b = ((train_f - mu) / sd).double(), ((test_f - mu) / sd).double()
    k = int(train_y.max()) + 1
    w = torch.zeros(a.shape[1], k, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + c, train_y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((b @ w + c).argmax(1) == test_y).float().mean())


@metric("probe", "model", True, "probe:     linear probe accuracy {accuracy:.4f} on {n_test} test images "
        "({n_train} training images, {dim}-d code)", check=has_code, flat={"probe": "accuracy"})
def probe(s) -> dict:
    d = s.cfg.data
    train, test = load_data(d.name, "train", d.image_size, d.channels), load_data(d.name, "test", d.image_size,
                                                                                   d.channels)
    if train.y is None or test.y is None:
        raise UserError(f"metric probe needs labels; '{s.cfg.data.name}' has none")
    n_train = min(len(train), 10000)  # the first 10,000: enough for a linear fit on a code of a few hundred dims
    fn = getattr(s.recipe, "encode", None) or s.recipe.features
    ftr, fte = encoded(s.recipe, train.x[:n_train], fn), encoded(s.recipe, test.x, fn)
    return {"accuracy": linear_probe(ftr, train.y[:n_train], fte, test.y), "n_train": n_train, "n_test": len(test),
            "dim": ftr.shape[1]}


@metric("ssl", "model", False, "ssl:       test error {error:.2%} ({wrong} of {n} test images; trained with "
        "{labelled} labels)", check=has_classifier, flat={"ssl_error": "error"})
def ssl(s) -> dict:
    x, y = test_split(s)
    logits = encoded(s.recipe, x, s.recipe.classify)
    wrong = int((logits.argmax(1) != y).sum())
    return {"error": wrong / len(x), "wrong": wrong, "n": len(x), "labelled": len(s.recipe.labelled)}
