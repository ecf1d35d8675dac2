"""Records in MLflow and Optuna."""
