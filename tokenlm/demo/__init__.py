"""The web demo (``tokenlm serve``): a Gradio app over :class:`tokenlm.TextToAudio`.

Gradio is an optional extra (``pip install 'tokenlm[demo]'``); nothing here imports it until the app is built.
"""
