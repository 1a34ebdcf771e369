"""procvlm: procedure-grounded progress rewards for robotic manipulation.

The pipeline, one package per stage: ``data`` -> ``annotate`` -> ``labels`` -> ``vqa`` ->
``training`` -> ``models`` -> ``reward`` / ``eval`` / ``serve``. See docs/design.md.
"""

__version__ = "0.1.0"
