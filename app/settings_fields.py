"""The generation settings, in order, as the settings form (settings_panel.py) shows them:
name, label, kind ("int", "float" or "texts") and the input's attributes. Made from
engine.sampling.GenerationSettings by `python -m tools.make_settings_fields`: do not edit."""

FIELDS = (
    {'name': 'temperature', 'label': 'Temperature (0 = greedy)', 'kind': 'float', 'input': {'min': '0', 'max': '5', 'step': '0.05'}},
    {'name': 'top_k', 'label': 'Top-k (0 = no limit)', 'kind': 'int', 'input': {'min': '0', 'step': '1'}},
    {'name': 'top_p', 'label': 'Top-p (1 = no limit)', 'kind': 'float', 'input': {'min': '0.01', 'max': '1', 'step': '0.01'}},
    {'name': 'repetition_penalty', 'label': 'Repetition penalty (1 = none)', 'kind': 'float', 'input': {'min': '0.01', 'max': '5', 'step': '0.05'}},
    {'name': 'max_new_tokens', 'label': 'Max new tokens', 'kind': 'int', 'input': {'min': '1', 'step': '1'}},
    {'name': 'seed', 'label': 'Seed (blank = random)', 'kind': 'int', 'input': {'step': '1', 'placeholder': 'random'}},
    {'name': 'stop', 'label': 'Stop strings', 'kind': 'texts', 'input': {}},
)
