"""Classifiers shipped with musiclime."""

from .demo_classifier import DemoClassifier, DemoClassifierConfig, DemoNet

__all__ = ["DemoClassifier", "DemoClassifierConfig", "DemoNet"]
