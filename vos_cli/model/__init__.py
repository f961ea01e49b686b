"""Network: backbones, the generative appearance module and the A-GAME heads."""
