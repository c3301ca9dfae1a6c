"""The web demo (``mask2former-app``, ``demo/app.py``): a gradio page on 127.0.0.1.

``build_app`` (in ``mask2former.app.ui``) needs the optional ``gradio`` package
(``pip install "mask2former[app]"``); the model side (``segmenter``, ``inputs``, ``results``)
does not.
"""
