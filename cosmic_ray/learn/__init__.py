"""Features, episodes, the ProtoNet, Ray Train training, the classifier, the MLflow registry, evaluation."""
