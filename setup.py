"""Packaging for pymemri: everything is read from settings.ini, the single source of metadata."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

config = ConfigParser(delimiters=["="])
config.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["Planning", "Pre-Alpha", "Alpha", "Beta", "Production/Stable", "Mature", "Inactive"]
license_name, license_classifier = licenses[cfg["license"]]
readme = Path(__file__).parent / "README.md"


def requirement_list(key):
    return cfg.get(key, "").split()


def extras():
    "The optional parts: the embedded Pod, the notebook form, Kubernetes, what tests use, and everything a contributor needs."
    pod, notebook = requirement_list("pod_requirements"), requirement_list("notebook_requirements")
    kubernetes, testing = requirement_list("kubernetes_requirements"), pod + requirement_list("testing_requirements")
    return {"pod": pod, "notebook": notebook, "testing": testing, "kubernetes": pod + kubernetes,
            "dev": testing + notebook + kubernetes + requirement_list("dev_requirements")}


def console_scripts():
    return [line.strip() for line in cfg.get("console_scripts", "").splitlines() if line.strip()]


setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else cfg["description"],
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    url=cfg["git_url"],
    license=license_name,
    keywords=cfg["keywords"].split(),
    classifiers=[
        f"Development Status :: {cfg['status']} - {statuses[int(cfg['status'])]}",
        f"Intended Audience :: {cfg['audience']}",
        f"License :: {license_classifier}",
        f"Natural Language :: {cfg['language']}",
        "Programming Language :: Python :: 3.11",
    ],
    packages=setuptools.find_packages(include=["pymemri", "pymemri.*"]),
    include_package_data=True,
    package_data={"pymemri.plugin": ["template_files/**/*"]},  # the plugin template's files (see plugin.template)
    python_requires=f">={cfg['min_python']}",
    install_requires=requirement_list("requirements"),
    extras_require=extras(),
    entry_points={"console_scripts": console_scripts(), "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
