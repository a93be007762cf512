"""Data: image I/O, dataset readers, composite synthesis, built-in photos, region masks.

Submodules are imported explicitly (``from rharm_lib.data import ihd``):

- :mod:`.imageio`    load/save images and masks with the documented conversions
- :mod:`.ihd`        iHarmony4 layout reader
- :mod:`.real`       real composites without ground truth (DIH99 layout), RealHM-style triplets
- :mod:`.synth`      iHarmony4-style composite synthesis (batched torch)
- :mod:`.photos`     photo sets (photos + masks) as uint8 tensors for training
- :mod:`.builtin`    photos shipped inside installed packages, with committed masks
- :mod:`.regions`    object-like region masks for photos without masks
- :mod:`.benchmark`  writes a fixed test benchmark in iHarmony4's layout
- :mod:`.fetch`      downloads and converts upstream data
- :mod:`.pack`       compact training packs
"""
