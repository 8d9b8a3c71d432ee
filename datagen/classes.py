"""The crystallinity classes every dataset labels, in label order (label ``i`` is ``CLASS_NAMES[i]``).

Written once: the store's ``label`` flags, the recipes' ``classes``, the particle-kind registry and
the classifier all take them from here.
"""

CLASS_NAMES = ("amorphous", "monocrystalline", "polycrystalline")

#: The ``label`` of a sample that shows particles of several classes (a field of view); its particles'
#: own classes are stored per particle.
MIXED_LABEL = -1

#: The colour each class is drawn in, in every picture (dataset previews, the micrograph overlay).
CLASS_COLOURS = {"amorphous": "tab:orange", "monocrystalline": "tab:blue", "polycrystalline": "tab:green"}
