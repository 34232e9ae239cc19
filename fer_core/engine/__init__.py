"""The trainer: config composition (build.py), the loop (loop.py) and its parts.

Public entry points: :func:`fer_core.engine.build.compose` and
:func:`fer_core.engine.recipe.run_recipe` (imported lazily: ``fer_core.engine`` stays light).
"""
