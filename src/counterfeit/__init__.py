"""counterfeit: train, evaluate and look inside Generative Adversarial Networks."""

__version__ = "0.1.0"
