"""Operating cosmic_ray: the CLI, the local Ray cluster, deploying Serve, the pipeline, the retrain job, the demo."""
