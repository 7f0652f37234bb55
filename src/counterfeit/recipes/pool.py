"""A pool of past generated images for D (Shrivastava et al. 2017; CycleGAN's 50-image buffer).

D is shown a mix of the newest fakes and older ones, so it does not forget what G produced a few steps ago. Until
the pool is full every fake is stored and returned as it is; once full, each fake of a query is, with probability
1/2, returned as it is, or swapped for a random stored one (which it then replaces). The pool is recipe state: it
travels in the checkpoint (Recipe.state_dict), so a resumed run sees the same pool.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []  # (C, H, W) each, detached

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """fakes (B, C, H, W) -> (B, C, H, W) for D: the newest and, once the pool is full, some older fakes."""
        if self.size <= 0:
            return fakes
        out = []
        for img in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand(1).item() < 0.5:  # the global stream: saved and restored with the run's RNG state
                i = int(torch.randint(self.size, (1,)).item())
                out.append(self.images[i])
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size,
                "images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict, device="cpu") -> None:
        self.size = int(state["size"])
        imgs = state["images"]
        self.images = [t.to(device) for t in imgs] if imgs.numel() else []
