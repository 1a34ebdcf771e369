"""Training: the compact model's trainer (``compact``) and its windowed corpus (``data``);
VLM supervised fine-tuning lives in its own modules. Nothing heavy is imported here."""
