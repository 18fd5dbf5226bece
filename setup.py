"""Package layout that pyproject.toml cannot say: the task suite at the repository root ships inside
the wheel as `kernelsmith._suite` (its level folders as namespace packages of plain .py files)."""

from setuptools import find_namespace_packages, find_packages, setup

SUITE = ["kernelsmith._suite"] + [
    f"kernelsmith._suite.{name}" for name in find_namespace_packages(where="tasks")
]

setup(
    packages=find_packages(include=["kernelsmith*", "evaluators*", "archive*", "prompts"]) + SUITE,
    package_dir={"kernelsmith._suite": "tasks"},
)
