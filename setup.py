"""Package discovery: the code under tortoise_lite/ plus the top-level conf/ and recipes/ folders.

conf/ and recipes/ live at the repository top (DESIGN.md layout) and are installed as the data packages
``tortoise_lite.conf`` and ``tortoise_lite.recipes`` (mapped in pyproject.toml), so a wheel installed
outside the repository still composes its Hydra configs.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tortoise_lite", "tortoise_lite.*"])
    + ["tortoise_lite.conf", "tortoise_lite.recipes"]
)
