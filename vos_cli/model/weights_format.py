"""The identifiers a vos weights file carries: its own module, so that both our writer
(``factory``) and the converter of the authors' checkpoint (``official``) use them without
importing each other."""

FORMAT = "vos-agame"
TRAIN_FORMAT = "vos-train"
VERSION = 1
