"""The classifier: Detoxify scores plus safeguarding, threat, personal-data and enquiry rules."""

from monitor.classify.assessment import Assessment, RuleMatch
from monitor.classify.pipeline import ClassifierPipeline, ModelState, ModelStatus

__all__ = ["Assessment", "ClassifierPipeline", "ModelState", "ModelStatus", "RuleMatch"]
