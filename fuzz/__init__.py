"""Coverage-guided fuzzing (atheris): ``fuzz/run.py NAME`` runs ``fuzz/targets/NAME.py``."""
