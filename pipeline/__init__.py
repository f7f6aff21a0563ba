"""From trained models to scores and submissions: the predictor registry (predictors.py), the one evaluate
path (evaluate.py), the one submission path (submission.py), their command line (cli.py), and the stage
runner with its recipes (stages.py, recipes.py)."""
