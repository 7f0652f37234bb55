"""Metrics. Parzen (2014 protocol) lives here; FID/KID/IS/PR follow the same module layout."""

from .parzen import PAPER_SIGMAS, parzen_evaluate, parzen_log_likelihoods  # noqa: F401
