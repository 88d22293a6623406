"""What the Gradio app (app.py at the repository root) calls: its handlers and the upload limits; app.py
itself only lays out the interface."""
