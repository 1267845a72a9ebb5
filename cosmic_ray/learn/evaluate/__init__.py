"""Evaluation of a classifier: metrics, the promotion gate, scorers, the report and its figures.

Import the submodules (nothing is re-exported here, so importing the package stays cheap):

* :mod:`~cosmic_ray.learn.evaluate.metrics`: closed-set and open-set metrics, bootstrap intervals;
* :mod:`~cosmic_ray.learn.evaluate.gate`: the paired-bootstrap gate (does a candidate beat production);
* :mod:`~cosmic_ray.learn.evaluate.tables`: labelled tables, same-event keys, event-disjoint folds;
* :mod:`~cosmic_ray.learn.evaluate.inputs`: featurized evaluation inputs and the seeded support draws;
* :mod:`~cosmic_ray.learn.evaluate.scorers`: ProtoNet and baseline predictions on the same objects;
* :mod:`~cosmic_ray.learn.evaluate.report`: the evaluation report, its intervals and its printout;
* :mod:`~cosmic_ray.learn.evaluate.figures`: confusion matrix and embedding map as PNG.
"""
